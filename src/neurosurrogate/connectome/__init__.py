"""connectome subpackage."""
