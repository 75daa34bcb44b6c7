"""Package data (static of the reviewer app); a package so setuptools ships its files."""
