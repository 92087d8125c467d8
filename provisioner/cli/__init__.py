"""The `rocks` command line: grammar, registry, output and help (DESIGN "Conventions")."""
