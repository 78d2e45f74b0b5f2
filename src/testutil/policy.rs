//! Policy fixtures: a whole normal-form policy from the few parts a test is about.

use crate::policy::model::{Mode, Namespaces};
use crate::policy::normal::{NormalAuthority, NormalPolicy, NormalRequirement, Pattern};

/// An enforcing policy `name` over the signet glob `images`, passed by any one of
/// `authorities`, with nothing else set.
pub fn normal_policy(name: &str, images: &str, authorities: Vec<NormalAuthority>) -> NormalPolicy {
    NormalPolicy {
        name: name.into(),
        origin: "test".into(),
        images: vec![Pattern::Glob(images.into())],
        exclude_images: vec![],
        namespaces: Namespaces::default(),
        mode: Mode::Enforce,
        requirements: vec![NormalRequirement::any_of(authorities)],
        exclusive: None,
        no_match_action: None,
        pull_secrets: Vec::new(),
    }
}
