"""Singer tap for livestream viewer records from Chinese livestream platforms."""
