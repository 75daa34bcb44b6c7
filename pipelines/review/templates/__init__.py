"""Package data (templates of the reviewer app); a package so setuptools ships its files."""
