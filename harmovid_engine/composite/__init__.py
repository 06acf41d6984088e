"""Compositing in linear light: placement of the talent on the plate, premultiplied over."""

from .place import place_talent, plate_index_for
from .over import over, unpremultiply

__all__ = ["place_talent", "plate_index_for", "over", "unpremultiply"]
