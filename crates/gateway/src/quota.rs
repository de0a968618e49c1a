//! Per-project quotas: how much a project may hold, and whether a request keeps it within
//! that. Pure: the project's current use comes in (counted from the gateway's copies of the
//! tables), the verdict goes out; a refused request stores nothing.
//!
//! The use is counted from tables that lag the log by milliseconds, so two requests of one
//! project racing at its limit can both pass: a quota bounds what a project can take, it is
//! not a reservation.

use events::spec::{ScalingPolicy, VnfdSpec};

/// A project's limits; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub vnfds: u32,
    pub vnfs: u32,
    /// VDU instances over all the project's VNFs.
    pub instances: u32,
    pub vdus_per_vnfd: u32,
    /// Instances one scale step of one policy adds (its increment times its targets).
    pub instances_per_scale_step: u32,
}

impl Default for Quotas {
    /// What an operator would expect of a shared VNF manager: room for a large tenant,
    /// bounds on a runaway script or a template gone wrong (1,350 VDUs × 37 instances).
    fn default() -> Self {
        Quotas {
            vnfds: 1_000,
            vnfs: 1_000,
            instances: 10_000,
            vdus_per_vnfd: 100,
            instances_per_scale_step: 100,
        }
    }
}

/// What a project holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub vnfds: u32,
    pub vnfs: u32,
    pub instances: u32,
}

/// A request that would take a project over one of its quotas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quota {quota} of project {project} exceeded: the limit is {limit}, {in_use} in use, this request needs {requested} more"
)]
pub struct QuotaExceeded {
    /// The quota's name, as its flag says it (`vnfds`, `instances_per_scale_step`, …).
    pub quota: &'static str,
    pub project: String,
    pub limit: u32,
    pub in_use: u32,
    pub requested: u32,
}

impl Quotas {
    /// Onboarding `spec`: one more VNFD, its VDUs, and each policy's scale step.
    pub fn onboard(
        &self,
        project: &str,
        spec: &VnfdSpec,
        usage: Usage,
    ) -> Result<(), QuotaExceeded> {
        let check = Check { project };
        check.within("vnfds", self.vnfds, usage.vnfds, 1)?;
        check.within(
            "vdus_per_vnfd",
            self.vdus_per_vnfd,
            0,
            count(spec.vdus.len()),
        )?;
        for policy in &spec.scaling_policies {
            self.scale_step(project, policy)?;
        }
        Ok(())
    }

    /// Creating a VNF of `spec`: one more VNF, and the instances it starts with.
    pub fn create(
        &self,
        project: &str,
        spec: &VnfdSpec,
        usage: Usage,
    ) -> Result<(), QuotaExceeded> {
        let check = Check { project };
        check.within("vnfs", self.vnfs, usage.vnfs, 1)?;
        let initial: u32 = spec
            .vdus
            .iter()
            .map(|vdu| spec.initial_instances(&vdu.name))
            .fold(0, u32::saturating_add);
        check.within("instances", self.instances, usage.instances, initial)
    }

    /// Scaling out by `policy`: its step, and the instances it adds.
    pub fn scale_out(
        &self,
        project: &str,
        policy: &ScalingPolicy,
        usage: Usage,
    ) -> Result<(), QuotaExceeded> {
        self.scale_step(project, policy)?;
        Check { project }.within("instances", self.instances, usage.instances, step(policy))
    }

    fn scale_step(&self, project: &str, policy: &ScalingPolicy) -> Result<(), QuotaExceeded> {
        Check { project }.within(
            "instances_per_scale_step",
            self.instances_per_scale_step,
            0,
            step(policy),
        )
    }
}

/// The instances one step of `policy` adds.
fn step(policy: &ScalingPolicy) -> u32 {
    policy.increment.saturating_mul(count(policy.targets.len()))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Check<'a> {
    project: &'a str,
}

impl Check<'_> {
    fn within(
        &self,
        quota: &'static str,
        limit: u32,
        in_use: u32,
        requested: u32,
    ) -> Result<(), QuotaExceeded> {
        if limit == 0 || in_use.saturating_add(requested) <= limit {
            return Ok(());
        }
        Err(QuotaExceeded {
            quota,
            project: self.project.to_owned(),
            limit,
            in_use,
            requested,
        })
    }
}

#[cfg(test)]
mod tests {
    use events::fixtures;

    use super::*;

    fn spec(vdus: usize, increment: u32, default: u32) -> VnfdSpec {
        let names: Vec<String> = (0..vdus).map(|n| format!("VDU{n}")).collect();
        VnfdSpec {
            scaling_policies: vec![ScalingPolicy {
                increment,
                targets: names.clone(),
                ..fixtures::scaling("SP1", "VDU0", 1, 100, default)
            }],
            ..fixtures::spec(names.iter().map(|n| fixtures::vdu(n, None)).collect())
        }
    }

    fn quotas() -> Quotas {
        Quotas {
            vnfds: 2,
            vnfs: 2,
            instances: 10,
            vdus_per_vnfd: 3,
            instances_per_scale_step: 4,
        }
    }

    #[test]
    fn a_template_gone_wrong_is_refused_naming_the_quota() {
        let refused = quotas().onboard("p", &spec(4, 1, 1), Usage::default());
        assert_eq!(
            refused.unwrap_err().to_string(),
            "quota vdus_per_vnfd of project p exceeded: the limit is 3, 0 in use, this request needs 4 more"
        );
        let step = quotas().onboard("p", &spec(3, 2, 1), Usage::default());
        assert_eq!(step.unwrap_err().quota, "instances_per_scale_step");
        assert!(
            quotas()
                .onboard("p", &spec(2, 2, 1), Usage::default())
                .is_ok()
        );
    }

    #[test]
    fn counts_are_checked_against_the_use() {
        let full = Usage {
            vnfds: 2,
            vnfs: 2,
            instances: 9,
        };
        assert_eq!(
            quotas()
                .onboard("p", &spec(1, 1, 1), full)
                .unwrap_err()
                .quota,
            "vnfds"
        );
        assert_eq!(
            quotas()
                .create("p", &spec(1, 1, 1), full)
                .unwrap_err()
                .quota,
            "vnfs"
        );
        let room = Usage { vnfs: 0, ..full };
        let two_instances = spec(2, 1, 1);
        let refused = quotas().create("p", &two_instances, room).unwrap_err();
        assert_eq!(
            (refused.quota, refused.in_use, refused.requested),
            ("instances", 9, 2)
        );
        let policy = &two_instances.scaling_policies[0];
        assert_eq!(
            quotas().scale_out("p", policy, room).unwrap_err().quota,
            "instances"
        );
    }

    #[test]
    fn zero_is_unlimited() {
        let unlimited = Quotas {
            vnfds: 0,
            vnfs: 0,
            instances: 0,
            vdus_per_vnfd: 0,
            instances_per_scale_step: 0,
        };
        let huge = Usage {
            vnfds: u32::MAX,
            vnfs: u32::MAX,
            instances: u32::MAX,
        };
        assert!(unlimited.onboard("p", &spec(1_350, 37, 37), huge).is_ok());
        assert!(unlimited.create("p", &spec(1_350, 37, 37), huge).is_ok());
    }
}
