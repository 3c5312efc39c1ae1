//! The sandbox provider's simulated customers.
//!
//! A sandbox sender accepts every message at once, like a provider answering 200, and its
//! customers then behave like people: the message is delivered, read, and perhaps answered,
//! after delays. How a customer behaves is their [`Persona`], named in the contact's
//! `sandbox_persona` field. This module only decides what happens and when; the caller makes it
//! happen through the same paths real provider webhooks take, so the sandbox exercises the
//! whole product (the window, keywords, opt-in answers, not-on-WhatsApp handling).

use std::fmt;
use std::str::FromStr;

use switchboard_core::Channel;
use time::Duration;

use crate::errors::{classify_whatsapp_error, SendError};

/// The contact field naming a sandbox customer's persona.
pub const PERSONA_FIELD: &str = "sandbox_persona";

/// How a simulated customer behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Persona {
    /// Reads everything and answers within seconds: YES to an opt-in request, the first
    /// choice offered, or a short reply.
    #[default]
    Responsive,
    /// Reads everything, answers nothing.
    Quiet,
    /// Answers an opt-in request with NO and a business's unsolicited template with STOP.
    Declines,
    /// Has no WhatsApp: a WhatsApp send fails as Meta's 131026 does. On SMS and Messenger
    /// this customer is quiet.
    NoWhatsapp,
    /// Reads after a while and answers a day later, after the customer-service window the
    /// business's message sat in has closed.
    Late,
}

impl Persona {
    pub const ALL: [Persona; 5] = [
        Persona::Responsive,
        Persona::Quiet,
        Persona::Declines,
        Persona::NoWhatsapp,
        Persona::Late,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Responsive => "responsive",
            Persona::Quiet => "quiet",
            Persona::Declines => "declines",
            Persona::NoWhatsapp => "no_whatsapp",
            Persona::Late => "late",
        }
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Persona {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Persona::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown sandbox persona {s:?}; one of {}",
                    Persona::ALL.map(Persona::as_str).join(", ")
                )
            })
    }
}

/// What the simulated customer is sent, as far as their behaviour depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub channel: Channel,
    pub persona: Persona,
    /// The text the customer sees (a template's name when its text is not at hand).
    pub text: &'a str,
    /// Reply buttons or quick replies offered, by title.
    pub choices: &'a [String],
    /// A template sent outside a window the customer opened.
    pub business_initiated: bool,
    /// The business asked this customer to opt in and they have not answered yet.
    pub opt_in_pending: bool,
    /// Varies delays and replies between messages, reproducibly (derive it from the message id).
    pub seed: u64,
}

/// Something the customer does after receiving a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Delivered,
    Read,
    Reply(String),
}

/// An action and how long after the send it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub after: Duration,
    pub action: Action,
}

const SHORT_REPLIES: [&str; 6] = [
    "Thanks!",
    "Great, thank you.",
    "Can you tell me a bit more?",
    "OK, see you then.",
    "Perfect 👍",
    "Got it, thanks for letting me know.",
];

/// Accepts a message the way the provider would, and says what the customer then does; a
/// customer the channel cannot reach is refused as the provider refuses them.
pub fn accept(delivery: &Delivery<'_>) -> Result<Vec<Scheduled>, SendError> {
    let persona = delivery.persona;
    if persona == Persona::NoWhatsapp && delivery.channel == Channel::Whatsapp {
        return Err(classify_whatsapp_error(
            131026,
            "Message undeliverable",
            "the sandbox customer has no WhatsApp account",
        ));
    }
    // Spread within a couple of seconds so several customers do not move in lockstep.
    let jitter = Duration::milliseconds((delivery.seed % 2_000) as i64);
    let delivered = Duration::seconds(1) + jitter / 4;
    let read = match persona {
        Persona::Late => Duration::minutes(2) + jitter,
        _ => Duration::seconds(3) + jitter / 2,
    };
    let mut plan = vec![
        Scheduled {
            after: delivered,
            action: Action::Delivered,
        },
        Scheduled {
            after: read,
            action: Action::Read,
        },
    ];
    if let Some(reply) = reply(delivery) {
        let after = match persona {
            Persona::Late => Duration::hours(25) + jitter,
            _ => read + Duration::seconds(2) + jitter,
        };
        plan.push(Scheduled {
            after,
            action: Action::Reply(reply),
        });
    }
    Ok(plan)
}

fn reply(delivery: &Delivery<'_>) -> Option<String> {
    let opt_in = delivery.opt_in_pending;
    match delivery.persona {
        Persona::Quiet | Persona::NoWhatsapp => None,
        Persona::Declines if opt_in => Some("NO".to_owned()),
        Persona::Declines if delivery.business_initiated => Some("STOP".to_owned()),
        Persona::Declines => None,
        Persona::Responsive | Persona::Late => Some(if opt_in {
            "YES".to_owned()
        } else if !delivery.choices.is_empty() {
            // Different customers tap different buttons, the same one each run.
            let pick = (delivery.seed / 3) as usize % delivery.choices.len();
            delivery.choices[pick].clone()
        } else {
            let pick = (delivery.seed / 7) as usize % SHORT_REPLIES.len();
            SHORT_REPLIES[pick].to_owned()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(persona: Persona, text: &str) -> Delivery<'_> {
        Delivery {
            channel: Channel::Whatsapp,
            persona,
            text,
            choices: &[],
            business_initiated: false,
            opt_in_pending: false,
            seed: 1234,
        }
    }

    fn replies(plan: &[Scheduled]) -> Vec<&str> {
        plan.iter()
            .filter_map(|s| match &s.action {
                Action::Reply(r) => Some(r.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn personas_parse_by_name() {
        for p in Persona::ALL {
            assert_eq!(p.as_str().parse::<Persona>(), Ok(p));
        }
        assert_eq!(" Quiet ".parse::<Persona>(), Ok(Persona::Quiet));
        assert!("grumpy"
            .parse::<Persona>()
            .unwrap_err()
            .contains("no_whatsapp"));
    }

    #[test]
    fn every_reachable_customer_gets_delivered_then_read() {
        for persona in Persona::ALL {
            for channel in Channel::ALL {
                let mut d = delivery(persona, "Hello");
                d.channel = channel;
                let Ok(plan) = accept(&d) else {
                    assert_eq!((persona, channel), (Persona::NoWhatsapp, Channel::Whatsapp));
                    continue;
                };
                assert_eq!(plan[0].action, Action::Delivered);
                assert_eq!(plan[1].action, Action::Read);
                assert!(plan[0].after < plan[1].after);
                assert!(plan.windows(2).all(|w| w[0].after < w[1].after));
            }
        }
    }

    #[test]
    fn no_whatsapp_is_refused_as_meta_refuses_it() {
        let error = accept(&delivery(Persona::NoWhatsapp, "Hello")).unwrap_err();
        assert!(!error.is_retryable());
        assert_eq!(error.provider_code(), Some("131026"));
    }

    #[test]
    fn opt_in_requests_are_answered_by_persona() {
        let ask = "Would you like updates? Reply YES to agree or NO to decline.";
        let answer = |p| {
            let mut d = delivery(p, ask);
            d.opt_in_pending = true;
            replies(&accept(&d).unwrap()).join("")
        };
        assert_eq!(answer(Persona::Responsive), "YES");
        assert_eq!(answer(Persona::Declines), "NO");
        assert_eq!(answer(Persona::Quiet), "");
        assert_eq!(answer(Persona::Late), "YES");
        // Once answered, the confirmation (which says how to opt in again) is no question.
        let confirmation = "You will not receive WhatsApp messages from us. Reply YES to opt in.";
        assert!(replies(&accept(&delivery(Persona::Declines, confirmation)).unwrap()).is_empty());
    }

    #[test]
    fn a_declining_customer_stops_unsolicited_templates_only() {
        let mut d = delivery(Persona::Declines, "order_update");
        assert!(replies(&accept(&d).unwrap()).is_empty());
        d.business_initiated = true;
        assert_eq!(replies(&accept(&d).unwrap()), ["STOP"]);
    }

    #[test]
    fn responsive_customers_pick_a_choice_or_answer_briefly() {
        let choices = ["Tuesday".to_owned(), "Wednesday".to_owned()];
        let mut d = delivery(Persona::Responsive, "Which day suits you?");
        d.choices = &choices;
        let picked: Vec<String> = (0..8)
            .map(|seed| {
                d.seed = seed;
                replies(&accept(&d).unwrap())[0].to_owned()
            })
            .collect();
        assert!(picked.iter().all(|p| choices.contains(p)), "{picked:?}");
        assert!(picked.contains(&choices[0]) && picked.contains(&choices[1]));
        d.choices = &[];
        let reply = replies(&accept(&d).unwrap())[0].to_owned();
        assert!(SHORT_REPLIES.contains(&reply.as_str()));
    }

    #[test]
    fn a_late_customer_answers_after_the_window_closed() {
        let plan = accept(&delivery(Persona::Late, "Hello")).unwrap();
        let reply = plan.last().unwrap();
        assert!(matches!(reply.action, Action::Reply(_)));
        assert!(reply.after > Duration::hours(24));
    }

    #[test]
    fn the_same_message_plays_out_the_same_way() {
        let d = delivery(Persona::Responsive, "Hello");
        assert_eq!(accept(&d).unwrap(), accept(&d).unwrap());
    }
}
