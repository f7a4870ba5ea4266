//! Loop devices backed by image files, detached on drop.
