"""Typed settings of the free-form configuration sections, and the helpers they share."""
