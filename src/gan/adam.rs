//! Adam whose state can be saved and loaded (tch's optimiser keeps its moments inside libtorch
//! with no way to read them back), and an exponential moving average of a network's weights.
//!
//! The update is the one of Kingma & Ba (2015) as `torch.optim.Adam` computes it, with one
//! step count per parameter: a layer that receives no gradient (a progressive GAN's layers
//! for resolutions not reached yet) is left alone, and its bias correction starts when it first
//! trains.

use std::collections::HashMap;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use super::model::load_named;
use super::GanError;

/// Adam over the trainable variables of a var store, in name order.
#[derive(Debug)]
pub struct Adam {
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    params: Vec<Param>,
    /// Dynamic loss scaling for half-precision gradients (mixed precision on CUDA).
    loss_scale: Option<LossScale>,
}

/// A dynamic loss scale, as `torch.cuda.amp.GradScaler` keeps one: the loss is multiplied by
/// `scale` before back-propagation so half-precision gradients do not underflow, and the
/// gradients divided by it before the update. A step whose gradients overflowed is skipped
/// and the scale halved; after `GROWTH_INTERVAL` good steps in a row it doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScale {
    pub scale: f64,
    good_steps: u32,
    pub skipped: u64,
}

impl LossScale {
    const GROWTH_INTERVAL: u32 = 2000;

    #[must_use]
    pub fn new() -> Self {
        Self {
            scale: 65536.0,
            good_steps: 0,
            skipped: 0,
        }
    }
}

impl Default for LossScale {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
struct Param {
    name: String,
    value: Tensor,
    m: Tensor,
    v: Tensor,
    steps: i64,
}

impl Adam {
    /// Adam for every trainable variable of `vs`, moments at zero.
    #[must_use]
    pub fn new(vs: &nn::VarStore, learning_rate: f64, beta1: f64, beta2: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, value)| Param {
                m: value.zeros_like(),
                v: value.zeros_like(),
                name,
                value,
                steps: 0,
            })
            .collect();
        Self {
            learning_rate,
            beta1,
            beta2,
            eps: 1e-8,
            params,
            loss_scale: None,
        }
    }

    /// Turns dynamic loss scaling on (for mixed precision).
    pub fn scale_losses(&mut self) {
        self.loss_scale = Some(LossScale::new());
    }

    #[must_use]
    pub fn loss_scale(&self) -> Option<LossScale> {
        self.loss_scale
    }

    /// One update of every parameter from its gradient (`None`: the parameter took no part in
    /// the loss and is left alone, as `torch.optim` leaves a parameter whose `grad` is `None`).
    fn apply(&mut self, grads: &[Tensor]) -> Result<(), GanError> {
        let (b1, b2, lr, eps) = (self.beta1, self.beta2, self.learning_rate, self.eps);
        tch::no_grad(|| -> Result<(), GanError> {
            for (p, grad) in self.params.iter_mut().zip(grads) {
                if !grad.defined() {
                    continue;
                }
                p.steps += 1;
                let t = p.steps as f64;
                let _ =
                    p.m.f_mul_scalar_(b1)?
                        .f_add_(&grad.f_mul_scalar(1.0 - b1)?)?;
                let _ =
                    p.v.f_mul_scalar_(b2)?
                        .f_add_(&grad.f_square()?.f_mul_scalar(1.0 - b2)?)?;
                let m_hat = p.m.f_div_scalar(1.0 - b1.powf(t))?;
                let denom =
                    p.v.f_div_scalar(1.0 - b2.powf(t))?
                        .f_sqrt()?
                        .f_add_scalar(eps)?;
                let _ = p.value.f_sub_(&m_hat.f_div(&denom)?.f_mul_scalar(lr)?)?;
            }
            Ok(())
        })
    }

    /// The gradients of `loss` with respect to the parameters (nothing accumulates in their
    /// `grad`), then one update. With loss scaling on, a step whose gradients are not finite
    /// is skipped.
    ///
    /// # Errors
    /// When torch fails.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<(), GanError> {
        let scale = self.loss_scale.map(|s| s.scale);
        let root = match scale {
            Some(scale) => loss.f_mul_scalar(scale)?,
            None => loss.shallow_clone(),
        };
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.value).collect();
        let mut grads = Tensor::f_run_backward(&[&root], &params, false, false)?;
        let Some(mut scaler) = self.loss_scale else {
            return self.apply(&grads);
        };
        let mut finite = true;
        tch::no_grad(|| -> Result<(), GanError> {
            for grad in grads.iter_mut().filter(|g| g.defined()) {
                finite &= grad.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
                let _ = grad.f_div_scalar_(scaler.scale)?;
            }
            Ok(())
        })?;
        if finite {
            self.apply(&grads)?;
            scaler.good_steps += 1;
            if scaler.good_steps >= LossScale::GROWTH_INTERVAL {
                scaler.scale *= 2.0;
                scaler.good_steps = 0;
            }
        } else {
            scaler.scale = (scaler.scale / 2.0).max(1.0);
            scaler.good_steps = 0;
            scaler.skipped += 1;
        }
        self.loss_scale = Some(scaler);
        Ok(())
    }

    /// Forgets the moments (ProGAN does this when a new resolution starts).
    ///
    /// # Errors
    /// When torch fails.
    pub fn reset(&mut self) -> Result<(), GanError> {
        tch::no_grad(|| -> Result<(), GanError> {
            for p in &mut self.params {
                let _ = p.m.f_zero_()?;
                let _ = p.v.f_zero_()?;
                p.steps = 0;
            }
            Ok(())
        })
    }

    /// Steps taken by the parameter that has taken the most.
    #[must_use]
    pub fn steps(&self) -> i64 {
        self.params.iter().map(|p| p.steps).max().unwrap_or(0)
    }

    /// Writes the moments and step counts as safetensors (`m.<name>`, `v.<name>`,
    /// `steps.<name>`), atomically.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        let mut named = Vec::with_capacity(self.params.len() * 3);
        for p in &self.params {
            named.push((format!("m.{}", p.name), p.m.to_device(Device::Cpu)));
            named.push((format!("v.{}", p.name), p.v.to_device(Device::Cpu)));
            named.push((format!("steps.{}", p.name), Tensor::from_slice(&[p.steps])));
        }
        let tmp = path.with_extension("tmp.safetensors");
        Tensor::write_safetensors(&named, &tmp).map_err(|e| GanError::Weights {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        std::fs::rename(&tmp, path).map_err(|e| GanError::io(path, e))
    }

    /// Reads what [`Self::save`] wrote, checking that it names exactly these parameters with
    /// their shapes.
    ///
    /// # Errors
    /// When the file is missing, corrupt, or belongs to other networks.
    pub fn load(&mut self, path: &Path) -> Result<(), GanError> {
        let named: HashMap<String, Tensor> = load_named(path)?;
        let bad = |message: String| GanError::Weights {
            path: path.to_owned(),
            message,
        };
        if named.len() != self.params.len() * 3 {
            return Err(bad(format!(
                "holds {} tensors, the optimiser of these networks has {}",
                named.len(),
                self.params.len() * 3
            )));
        }
        tch::no_grad(|| -> Result<(), GanError> {
            for p in &mut self.params {
                let get = |prefix: &str| {
                    named
                        .get(&format!("{prefix}.{}", p.name))
                        .ok_or_else(|| bad(format!("lacks {prefix}.{}", p.name)))
                };
                let (m, v, steps) = (get("m")?, get("v")?, get("steps")?);
                if m.size() != p.value.size() || v.size() != p.value.size() {
                    return Err(bad(format!("moments of {} have the wrong shape", p.name)));
                }
                p.m.f_copy_(m)?;
                p.v.f_copy_(v)?;
                p.steps = steps.f_to_kind(Kind::Int64)?.f_int64_value(&[0])?;
            }
            Ok(())
        })
    }
}

/// An exponential moving average of a network's weights: `ema = decay * ema + (1 - decay) *
/// weights` for trainable variables after every step; other variables (batch-norm statistics,
/// growth state) are copied.
#[derive(Debug)]
pub struct Ema {
    pub decay: f64,
    pairs: Vec<(Tensor, Tensor, bool)>,
}

impl Ema {
    /// Pairs the variables of `source` with those of `target` by name (the two stores must
    /// hold the same networks) and starts the average at the source's weights.
    ///
    /// # Errors
    /// When the stores differ, or torch fails.
    pub fn new(source: &nn::VarStore, target: &nn::VarStore, decay: f64) -> Result<Self, GanError> {
        let from = source.variables();
        let to = target.variables();
        if from.len() != to.len() {
            return Err(GanError::Architecture(
                "the averaged network differs from the trained one".into(),
            ));
        }
        let mut pairs = Vec::with_capacity(from.len());
        for (name, src) in from {
            let dst = to.get(&name).ok_or_else(|| {
                GanError::Architecture(format!("the averaged network lacks {name}"))
            })?;
            pairs.push((
                src.shallow_clone(),
                dst.shallow_clone(),
                src.requires_grad(),
            ));
        }
        Ok(Self { decay, pairs })
    }

    /// Sets the average to the weights.
    ///
    /// # Errors
    /// When torch fails.
    pub fn copy(&mut self) -> Result<(), GanError> {
        tch::no_grad(|| -> Result<(), GanError> {
            for (src, dst, _) in &mut self.pairs {
                dst.f_copy_(src)?;
            }
            Ok(())
        })
    }

    /// Copies the variables that are not averaged (batch-norm statistics, growth state).
    ///
    /// # Errors
    /// When torch fails.
    pub fn copy_buffers(&self) -> Result<(), GanError> {
        tch::no_grad(|| -> Result<(), GanError> {
            for (src, dst, trainable) in &self.pairs {
                if !*trainable {
                    dst.shallow_clone().f_copy_(src)?;
                }
            }
            Ok(())
        })
    }

    /// The averaging step after training step `step` (counted from 0). The decay warms up as
    /// `min(decay, (1 + step) / (10 + step))` (as TensorFlow's `ExponentialMovingAverage` with
    /// `num_updates`): with 0.999 from the first step, a thousand steps in, the average would
    /// still be 37% the random initial weights.
    ///
    /// # Errors
    /// When torch fails.
    pub fn update(&mut self, step: u64) -> Result<(), GanError> {
        let warm = (1.0 + step as f64) / (10.0 + step as f64);
        let decay = self.decay.min(warm);
        tch::no_grad(|| -> Result<(), GanError> {
            for (src, dst, trainable) in &mut self.pairs {
                if *trainable {
                    // dst += (1 - decay) * (src - dst)
                    let _ = dst.f_add_(&src.f_sub(dst)?.f_mul_scalar(1.0 - decay)?)?;
                } else {
                    dst.f_copy_(src)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(value: f32) -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(f64::from(value)));
        assert!(w.requires_grad());
        vs
    }

    #[test]
    fn adam_matches_the_textbook_update_and_survives_a_save() {
        let vs = store(1.0);
        let mut adam = Adam::new(&vs, 0.1, 0.5, 0.999);
        let w = vs.variables()["w"].shallow_clone();
        // loss = sum(w^2): gradient 2w = 2; first Adam step moves each weight by lr exactly.
        adam.backward_step(&(&w * &w).sum(Kind::Float)).unwrap();
        let after: Vec<f32> = Vec::try_from(&w.detach()).unwrap();
        for x in after {
            assert!((x - 0.9).abs() < 1e-6, "{x}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adam.safetensors");
        adam.save(&path).unwrap();
        // A second optimiser loaded from the file takes the same next step as the first.
        let vs2 = store(0.9);
        let mut loaded = Adam::new(&vs2, 0.1, 0.5, 0.999);
        loaded.load(&path).unwrap();
        assert_eq!(loaded.steps(), 1);
        let w2 = vs2.variables()["w"].shallow_clone();
        adam.backward_step(&(&w * &w).sum(Kind::Float)).unwrap();
        loaded.backward_step(&(&w2 * &w2).sum(Kind::Float)).unwrap();
        let a: Vec<f32> = Vec::try_from(&w.detach()).unwrap();
        let b: Vec<f32> = Vec::try_from(&w2.detach()).unwrap();
        assert_eq!(a, b);
        // A fresh optimiser (moments forgotten) takes a different step.
        let vs3 = store(0.9);
        let mut fresh = Adam::new(&vs3, 0.1, 0.5, 0.999);
        let w3 = vs3.variables()["w"].shallow_clone();
        fresh.backward_step(&(&w3 * &w3).sum(Kind::Float)).unwrap();
        let c: Vec<f32> = Vec::try_from(&w3.detach()).unwrap();
        assert_ne!(a, c);
        // Another network's file is refused.
        let other = nn::VarStore::new(Device::Cpu);
        let _ = other.root().var("x", &[3], nn::Init::Const(0.0));
        assert!(Adam::new(&other, 0.1, 0.5, 0.999).load(&path).is_err());
    }

    #[test]
    fn a_scaled_loss_takes_the_same_step_and_an_overflow_is_skipped() {
        let (plain, scaled) = (store(1.0), store(1.0));
        let mut a = Adam::new(&plain, 0.1, 0.5, 0.999);
        let mut b = Adam::new(&scaled, 0.1, 0.5, 0.999);
        b.scale_losses();
        let (wa, wb) = (
            plain.variables()["w"].shallow_clone(),
            scaled.variables()["w"].shallow_clone(),
        );
        for _ in 0..3 {
            a.backward_step(&(&wa * &wa * 3.0).sum(Kind::Float))
                .unwrap();
            b.backward_step(&(&wb * &wb * 3.0).sum(Kind::Float))
                .unwrap();
        }
        assert_eq!(
            Vec::<f32>::try_from(&wa.detach()).unwrap(),
            Vec::<f32>::try_from(&wb.detach()).unwrap()
        );
        let before = Vec::<f32>::try_from(&wb.detach()).unwrap();
        let scale = b.loss_scale().unwrap().scale;
        b.backward_step(&(&wb * f64::INFINITY).sum(Kind::Float))
            .unwrap();
        assert_eq!(Vec::<f32>::try_from(&wb.detach()).unwrap(), before);
        let after = b.loss_scale().unwrap();
        assert_eq!((after.scale, after.skipped), (scale / 2.0, 1));
    }

    #[test]
    fn a_parameter_without_gradient_is_not_moved() {
        let vs = nn::VarStore::new(Device::Cpu);
        let used = vs.root().var("used", &[2], nn::Init::Const(1.0));
        let unused = vs.root().var("unused", &[2], nn::Init::Const(1.0));
        let mut adam = Adam::new(&vs, 0.1, 0.5, 0.999);
        adam.backward_step(&used.sum(Kind::Float)).unwrap();
        assert_eq!(Vec::<f32>::try_from(&unused.detach()).unwrap(), [1.0, 1.0]);
        assert_ne!(Vec::<f32>::try_from(&used.detach()).unwrap(), [1.0, 1.0]);
    }

    #[test]
    fn the_average_trails_the_weights() {
        let source = store(0.0);
        let target = store(5.0);
        let mut ema = Ema::new(&source, &target, 0.9).unwrap();
        ema.copy().unwrap();
        assert_eq!(Ema::new(&source, &target, 0.999).unwrap().decay, 0.999);
        let t = target.variables()["w"].shallow_clone();
        assert_eq!(Vec::<f32>::try_from(&t).unwrap(), [0.0; 3]);
        tch::no_grad(|| {
            let _ = source.variables()["w"].shallow_clone().fill_(1.0);
        });
        // Step 1000: past the warm-up, the decay is 0.9.
        ema.update(1000).unwrap();
        for x in Vec::<f32>::try_from(&t).unwrap() {
            assert!((x - 0.1).abs() < 1e-6, "{x}");
        }
        // Step 0: warming up, the decay is 0.1: the average moves most of the way.
        tch::no_grad(|| {
            let _ = source.variables()["w"].shallow_clone().fill_(1.1);
        });
        ema.update(0).unwrap();
        for x in Vec::<f32>::try_from(&t).unwrap() {
            assert!((x - (0.1 * 0.1 + 0.9 * 1.1)).abs() < 1e-6, "{x}");
        }
    }
}
