//! `switchboard campaign watch`: a campaign's hopper as a progress bar in the terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use switchboard_app::campaigns::{view_unchecked, CampaignView};
use switchboard_app::AppState;
use switchboard_core::campaign::{CampaignState, Hopper};
use switchboard_core::CampaignId;

const WIDTH: usize = 30;

/// Prints the campaign's progress every half second until it completes or stops (`once`:
/// one line, then returns). On a terminal the line redraws in place; piped, a line is written
/// only when something changed.
pub async fn watch(state: &AppState, id: CampaignId, once: bool) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    let first = fetch(state, id).await?;
    println!(
        "{} ({}) from sender {}: template {} ({})",
        first.campaign.name,
        first.campaign.id,
        first.campaign.sender_id,
        first.campaign.template_name,
        first.campaign.template_locale
    );
    let mut last: Option<String> = None;
    let rate = Rate::new(&first.hopper);
    let mut current = first;
    loop {
        let line = progress_line(&current, rate.per_second(&current.hopper));
        if last.as_deref() != Some(line.as_str()) {
            let mut out = std::io::stdout().lock();
            if terminal {
                write!(out, "\r\x1b[2K{line}")?;
            } else {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
            last = Some(line);
        }
        let ended = matches!(
            current.campaign.state,
            CampaignState::Completed | CampaignState::Stopped
        );
        if once || ended {
            if terminal {
                println!();
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        current = fetch(state, id).await?;
    }
}

async fn fetch(state: &AppState, id: CampaignId) -> anyhow::Result<CampaignView> {
    view_unchecked(state, id)
        .await
        .map_err(|e| anyhow::anyhow!("campaign {id}: {e}"))
}

/// Messages sent per second, over the time since watching began.
struct Rate {
    start: Instant,
    contacted: i64,
}

impl Rate {
    fn new(hopper: &Hopper) -> Self {
        Rate {
            start: Instant::now(),
            contacted: contacted(hopper),
        }
    }

    fn per_second(&self, hopper: &Hopper) -> Option<f64> {
        let seconds = self.start.elapsed().as_secs_f64();
        (seconds >= 1.0).then(|| (contacted(hopper) - self.contacted) as f64 / seconds)
    }
}

/// Recipients the campaign is done sending to (sent, or decided never to be).
fn contacted(h: &Hopper) -> i64 {
    h.total - h.fresh - h.retry - h.in_flight
}

fn progress_line(view: &CampaignView, rate: Option<f64>) -> String {
    let h = &view.hopper;
    let done = contacted(h);
    let filled = if h.total > 0 {
        (done as usize * WIDTH) / h.total as usize
    } else {
        WIDTH
    };
    let percent = if h.total > 0 {
        done * 100 / h.total
    } else {
        100
    };
    let mut line = format!(
        "[{}{}] {percent:>3}%  total {} · fresh {} · pending {} · retry {} · closed {} · \
         failed {} · skipped {}  {}",
        "#".repeat(filled.min(WIDTH)),
        "-".repeat(WIDTH - filled.min(WIDTH)),
        h.total,
        h.fresh,
        h.pending,
        h.retry,
        h.closed,
        h.failed,
        h.skipped,
        view.campaign.state,
    );
    if let Some(rate) = rate.filter(|r| *r > 0.0) {
        line.push_str(&format!("  {rate:.0} msg/s"));
    }
    if let Some(held) = &view.campaign.held {
        line.push_str(&format!("  held: {} ({})", held.code, held.reason));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::campaign::{Campaign, CampaignState, Held};
    use time::OffsetDateTime;

    fn view(hopper: Hopper, held: Option<Held>) -> CampaignView {
        CampaignView {
            campaign: Campaign {
                id: CampaignId::new(),
                name: "Spring".into(),
                sender_id: switchboard_core::SenderId::new(),
                list_id: switchboard_core::ListId::new(),
                template_name: "offer".into(),
                template_locale: "en".into(),
                variable_mapping: Default::default(),
                state: CampaignState::Running,
                start_at: None,
                end_at: None,
                response_timeout_minutes: 60,
                rate_limit_per_second: None,
                held,
                round: 0,
                created_by: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
                started_at: None,
                finished_at: None,
            },
            hopper,
        }
    }

    #[test]
    fn the_bar_fills_with_what_was_sent_or_decided() {
        let hopper = Hopper {
            total: 200,
            fresh: 90,
            pending: 60,
            retry: 10,
            closed: 20,
            failed: 5,
            skipped: 15,
            in_flight: 10,
        };
        let line = progress_line(&view(hopper, None), Some(812.4));
        let bar = format!("[{}{}]  45%", "#".repeat(13), "-".repeat(17));
        assert!(line.starts_with(&bar), "{line}");
        assert!(
            line.contains("fresh 90 · pending 60 · retry 10 · closed 20"),
            "{line}"
        );
        assert!(line.ends_with("running  812 msg/s"), "{line}");
        let held = Held {
            code: "outside_business_hours".into(),
            reason: "closed until 09:00".into(),
            until: None,
        };
        let line = progress_line(&view(Hopper::default(), Some(held)), None);
        assert!(
            line.starts_with("[##############################] 100%"),
            "{line}"
        );
        assert!(line.ends_with("held: outside_business_hours (closed until 09:00)"));
    }
}
