//! Where the detector's generated images come from: the served model's generator and the zoo
//! members ([`crate::gan::zoo`]) of every family that is not held out.
//!
//! Leave-one-family-out bookkeeping lives here and only here: a [`FakeMix`] is built with the
//! families to hold out and simply does not hold their generators, so no code path of
//! training, validation or calibration can draw an image from them. Every image drawn is
//! counted per source, and the counts travel in the training report, which is what the test
//! of the bookkeeping checks.

use std::collections::BTreeMap;

use image::DynamicImage;

use crate::gan::catalog::LoadedModel;
use crate::gan::zoo::{Family, ZooGenerator};
use crate::gan::GanError;

enum Source<'a> {
    Own(&'a LoadedModel),
    Zoo(&'a ZooGenerator),
}

impl Source<'_> {
    fn name(&self) -> String {
        match self {
            Self::Own(model) => format!("own:{}", model.card.name),
            Self::Zoo(member) => format!("zoo:{}", member.card().name),
        }
    }

    fn family(&self) -> Family {
        match self {
            Self::Own(_) => Family::OWN,
            Self::Zoo(member) => member.card().family,
        }
    }

    fn generate(&self, seed: u64, indices: &[u64]) -> Result<Vec<DynamicImage>, GanError> {
        match self {
            Self::Own(model) => model.generate(seed, indices),
            Self::Zoo(member) => member.generate(seed, indices),
        }
    }
}

/// The generators a detector is trained against.
pub struct FakeMix<'a> {
    own: Option<Source<'a>>,
    zoo: Vec<Source<'a>>,
    held_out: Vec<Family>,
}

impl<'a> FakeMix<'a> {
    /// Our generator and every zoo member, less the `held_out` families (holding out
    /// [`Family::OWN`] drops our own generator too).
    ///
    /// # Errors
    /// When nothing is left to train against.
    pub fn new(
        own: &'a LoadedModel,
        zoo: &'a [ZooGenerator],
        held_out: &[Family],
    ) -> Result<Self, GanError> {
        let own = (!held_out.contains(&Family::OWN)).then_some(Source::Own(own));
        let zoo: Vec<Source<'a>> = zoo
            .iter()
            .filter(|m| !held_out.contains(&m.card().family))
            .map(Source::Zoo)
            .collect();
        if own.is_none() && zoo.is_empty() {
            return Err(GanError::Setting(
                "holding those families out leaves no generator to train the detector against"
                    .into(),
            ));
        }
        Ok(Self {
            own,
            zoo,
            held_out: held_out.to_vec(),
        })
    }

    /// Names of the generators images are drawn from.
    #[must_use]
    pub fn sources(&self) -> Vec<(String, Family)> {
        self.own
            .iter()
            .chain(&self.zoo)
            .map(|s| (s.name(), s.family()))
            .collect()
    }

    /// The generators' names, comma-separated (for reports).
    #[must_use]
    pub fn source_list(&self) -> String {
        self.sources()
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The families images are drawn from, in [`Family::ALL`] order.
    #[must_use]
    pub fn families(&self) -> Vec<Family> {
        let present: Vec<Family> = self
            .own
            .iter()
            .chain(&self.zoo)
            .map(Source::family)
            .collect();
        Family::ALL
            .into_iter()
            .filter(|f| present.contains(f))
            .collect()
    }

    /// Images of one family only, its generators in turn by index (for the family head).
    ///
    /// # Errors
    /// When the family is not in the mix, or a generator fails.
    pub fn generate_family(
        &self,
        family: Family,
        seed: u64,
        indices: &[u64],
        counts: &mut BTreeMap<String, u64>,
    ) -> Result<Vec<DynamicImage>, GanError> {
        let sources: Vec<&Source<'a>> = self
            .own
            .iter()
            .chain(&self.zoo)
            .filter(|s| s.family() == family)
            .collect();
        if sources.is_empty() {
            return Err(GanError::Setting(format!(
                "no {family} generator in the mix"
            )));
        }
        let mut out = Vec::with_capacity(indices.len());
        for &index in indices {
            let source = sources[(index % sources.len() as u64) as usize];
            out.extend(source.generate(seed, &[index])?);
            *counts.entry(source.name()).or_default() += 1;
        }
        Ok(out)
    }

    #[must_use]
    pub fn held_out(&self) -> &[Family] {
        &self.held_out
    }

    #[must_use]
    pub fn has_zoo(&self) -> bool {
        !self.zoo.is_empty()
    }

    /// Which source makes image `index`: with both our generator and the zoo, even indices
    /// are ours and odd ones go round the zoo members (half the generated images are ours,
    /// which keeps the detector sharp on the images moderators see most); otherwise whichever
    /// is there.
    fn source_of(&self, index: u64) -> &Source<'a> {
        match (&self.own, self.zoo.len()) {
            (Some(own), 0) => own,
            (None, n) => &self.zoo[(index % n as u64) as usize],
            (Some(own), n) => {
                if index.is_multiple_of(2) {
                    own
                } else {
                    &self.zoo[((index / 2) % n as u64) as usize]
                }
            }
        }
    }

    /// Generated images for latent (`seed`, index) of each index, in order, each from the
    /// source [`Self::source_of`] picks; `counts` gains one per image and source.
    ///
    /// # Errors
    /// When a generator fails.
    pub fn generate(
        &self,
        seed: u64,
        indices: &[u64],
        counts: &mut BTreeMap<String, u64>,
    ) -> Result<Vec<DynamicImage>, GanError> {
        // Per source: (position in the answer, latent index) of each of its images.
        type Wanted<'s, 'a> = (&'s Source<'a>, Vec<(usize, u64)>);
        let mut groups: BTreeMap<String, Wanted<'_, 'a>> = BTreeMap::new();
        for (at, &index) in indices.iter().enumerate() {
            let source = self.source_of(index);
            groups
                .entry(source.name())
                .or_insert_with(|| (source, Vec::new()))
                .1
                .push((at, index));
        }
        let mut out: Vec<Option<DynamicImage>> = vec![None; indices.len()];
        for (name, (source, members)) in groups {
            let wanted: Vec<u64> = members.iter().map(|m| m.1).collect();
            let images = source.generate(seed, &wanted)?;
            *counts.entry(name).or_default() += images.len() as u64;
            for ((at, _), image) in members.into_iter().zip(images) {
                out[at] = Some(image);
            }
        }
        out.into_iter()
            .map(|i| {
                i.ok_or_else(|| GanError::Internal("a generator returned too few images".into()))
            })
            .collect()
    }
}
