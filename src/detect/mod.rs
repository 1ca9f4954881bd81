//! The synthetic-image detector: a fine-tuned copy of the model's discriminator, calibrated
//! (Platt) with a threshold and domain rules, run on the model thread for uploads.
//!
//! - [`detector`]: loading, the views an image is scored on, domain rules, calibration and the
//!   ranking metrics (AP, ROC);
//! - [`train`]: `hallmark train-detector` (fine-tuning, calibration, threshold, rules);
//! - [`eval`]: `hallmark evaluate --detector` and the registry figures of the card;
//! - [`augment`]: the JPEG / resize / blur / crop transforms training and evaluation share.
//!
//! The detector's section of the model card is a type of [`crate::gan::card`]: the card file
//! belongs to the model, and keeping its types there keeps `gan` free of any edge to `detect`.

pub mod augment;
pub mod detector;
pub mod eval;
pub mod train;

pub use detector::{Detection, Detector};
