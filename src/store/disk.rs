//! The embedded store. (Being written.)
