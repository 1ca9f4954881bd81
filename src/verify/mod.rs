//! Checking uploaded images. So far: the upload gate every checked file passes first (issue
//! "Verification and detection" builds the verdict on top of it).

pub mod upload;
