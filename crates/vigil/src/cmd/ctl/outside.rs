//! `vigil ctl outside-schedule`: which ports the server's scans of agents'
//! observed addresses probe at each run ([`vigil_core::outside`]).

use super::Ctl;
use anyhow::Result;
use clap::Args;
use vigil_core::outside::OutsideSchedule;

#[derive(Debug, Args)]
pub(super) struct OutsideArgs {
    /// Set how many of the most common ports every run probes (0: none
    /// beyond the policy's and the ones alerting).
    #[arg(long)]
    top_ports: Option<u16>,
    /// Set over how many hours the rest of the range is probed, a slice per
    /// run (0: the whole range at every run; at most 168).
    #[arg(long)]
    full_range_hours: Option<u16>,
}

fn show(s: OutsideSchedule) -> String {
    format!("beside the policy's ports and those with an alert: {s}\n")
}

impl Ctl {
    pub(super) async fn outside_schedule(&self, args: OutsideArgs) -> Result<()> {
        let path = "/outside-schedule";
        if args.top_ports.is_none() && args.full_range_hours.is_none() {
            let answer = self.api.get(path).await?;
            return self.show(answer, show);
        }
        // One value given: the other stays as it is.
        let now: OutsideSchedule = super::decode(self.api.get(path).await?)?;
        let body = OutsideSchedule {
            top_ports: args.top_ports.unwrap_or(now.top_ports),
            full_range_hours: args.full_range_hours.unwrap_or(now.full_range_hours),
        };
        let answer = self.api.put(path, &body).await?;
        self.show(answer, show)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_as_what_each_run_probes() {
        assert_eq!(
            show(OutsideSchedule::default()),
            "beside the policy's ports and those with an alert: the top 1000 ports at every \
             run, the rest of the range over 24 h\n"
        );
    }
}
