"""Domain logic shared by the CLI, the web app and the daemons: the only code that changes the
database. Functions take the caller's session (writes) or reader (reads) as a parameter."""
