//! The synthetic-image detector: a fine-tuned copy of the model's discriminator, calibrated
//! (Platt) with a threshold and domain rules, run on the model thread for uploads.
//!
//! - [`detector`]: loading, the views an image is scored on, domain rules, calibration and the
//!   ranking metrics (AP, ROC);
//! - [`train`]: `hallmark train-detector` (fine-tuning, calibration, threshold, rules);
//! - [`eval`]: `hallmark evaluate --detector` and the registry figures of the card;
//! - [`lofo`]: `hallmark evaluate --leave-one-out`, the figures on families never trained on;
//! - [`mix`]: which generators the detector is trained against (the model's own and the zoo's,
//!   less any held-out family);
//! - [`attribution`]: the family head that names the generator family a synthetic image's
//!   traces are nearest to;
//! - [`augment`]: the JPEG / resize / blur / crop transforms training and evaluation share.
//!
//! The detector's section of the model card is a type of [`crate::gan::card`]: the card file
//! belongs to the model, and keeping its types there keeps `gan` free of any edge to `detect`.

pub mod attribution;
pub mod augment;
pub mod detector;
pub mod eval;
pub mod lofo;
pub mod mix;
pub mod train;

pub use detector::{Detection, Detector, NearestFamily};
