//! `ha-daemon resources status|start|stop`: the resource group by hand, with its
//! timeline printed as a table or as JSON. Every resource is validated first; nothing
//! runs when one is invalid.

use std::path::Path;

use crate::cli::ResourcesAction;
use crate::config::Config;
use crate::core::plan::Outcome;
use crate::resource::build::group_from;
use crate::resource::supervise::{self, SurveyReport, TimelineReport};

/// Runs `action` on the group of the configuration at `path`. The error names what
/// failed; a run that did not reach its goal is an error after its timeline is printed.
pub async fn run(path: &Path, action: ResourcesAction, json: bool) -> Result<(), String> {
    let config = Config::load(path).map_err(|error| error.to_string())?;
    let group = group_from(&config.resources);
    if let Err(errors) = group.validate().await {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(format!("invalid resources:\n  {}", lines.join("\n  ")));
    }
    let (timeline, goal) = match action {
        ResourcesAction::Status => {
            let (_, report) = supervise::survey(&group).await;
            print_survey(&report, json);
            return Ok(());
        }
        ResourcesAction::Start => (group.start().await, Outcome::Started),
        ResourcesAction::Stop => (group.stop().await, Outcome::Stopped),
    };
    if json {
        let report = TimelineReport::from(&timeline);
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!("{timeline}");
    }
    if timeline.outcome == goal {
        Ok(())
    } else {
        Err(format!("{action:?} ended {:?}", timeline.outcome))
    }
}

fn print_survey(report: &SurveyReport, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(report) {
            println!("{line}");
        }
        return;
    }
    println!("group: {}", report.state);
    for member in &report.members {
        println!(
            "  {:<16} {:<5} {}",
            member.resource, member.agent, member.health
        );
    }
}
