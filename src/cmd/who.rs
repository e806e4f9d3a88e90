//! `vigil who`: flags -> [`vigil::cluster::who`] -> the owner record on
//! stdout, exit code 0 (online), 1 (offline) or 2 (usage), 3 (Redis error).

use std::process::ExitCode;
use std::time::Duration;

use vigil::cluster::{who, ClusterOptions};

/// Ask a cluster's Redis which node and connection hold a client id.
#[derive(clap::Args, Debug, Clone)]
pub struct WhoArgs {
    /// The client id.
    id: String,
    /// The cluster's Redis: redis://HOST:PORT.
    #[arg(long, value_parser = ClusterOptions::parse)]
    cluster: ClusterOptions,
    /// Prefix of the cluster's keys.
    #[arg(long, default_value = "vigil:")]
    cluster_prefix: String,
}

/// Prints the owner record of `args.id`, or "offline".
pub fn run(args: WhoArgs) -> ExitCode {
    let mut options = args.cluster;
    options.prefix = args.cluster_prefix;
    match who(&options, &args.id, Duration::from_secs(5)) {
        Ok(Some(record)) => {
            println!("{record}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("offline");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vigil who: {e}");
            ExitCode::from(3)
        }
    }
}
