"""The lab's version (host side only: never copied into the trial image)."""

__version__ = "0.2.0"
