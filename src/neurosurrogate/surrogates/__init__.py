"""surrogates subpackage."""
