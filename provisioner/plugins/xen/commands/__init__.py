"""Commands of the Xen roll, imported only when one runs."""
