//! The conversation workflow (R5.2): who may claim, release, hand over and close a thread, and
//! who may reply in it. Pure functions of (the conversation's state, the actor, the action).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::Role;
use crate::channel::Channel;
use crate::ids::{ContactId, ConversationId, SenderId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// Waiting for an agent.
    Unclaimed,
    /// One agent owns it and is the one who replies.
    Claimed,
    /// Done; the customer's next message reopens it as unclaimed.
    Closed,
}

impl ConversationState {
    pub const ALL: [ConversationState; 3] = [Self::Unclaimed, Self::Claimed, Self::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unclaimed => "unclaimed",
            Self::Claimed => "claimed",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for ConversationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConversationState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown conversation state `{s}`: expected unclaimed, claimed or closed")
            })
    }
}

/// Where a conversation stands in the workflow: its state and, when claimed, by whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub state: ConversationState,
    pub assignee: Option<UserId>,
}

impl Assignment {
    pub const UNCLAIMED: Assignment = Assignment {
        state: ConversationState::Unclaimed,
        assignee: None,
    };
    pub const CLOSED: Assignment = Assignment {
        state: ConversationState::Closed,
        assignee: None,
    };

    pub fn claimed_by(user: UserId) -> Self {
        Self {
            state: ConversationState::Claimed,
            assignee: Some(user),
        }
    }
}

/// The thread between one contact and one sender.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub contact_id: ContactId,
    pub sender_id: SenderId,
    pub channel: Channel,
    pub state: ConversationState,
    pub assignee_id: Option<UserId>,
    pub last_message_at: Option<OffsetDateTime>,
    /// The customer's last message, by the provider's clock: the start of the window.
    pub last_inbound_at: Option<OffsetDateTime>,
    /// Since when the customer has been waiting for an answer; `None` when the business spoke
    /// last.
    pub waiting_since: Option<OffsetDateTime>,
    /// Inbound messages no one has marked read yet.
    pub unread_count: i64,
    /// The start of the latest message, for the inbox list.
    pub preview: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Conversation {
    pub fn assignment(&self) -> Assignment {
        Assignment {
            state: self.state,
            assignee: self.assignee_id,
        }
    }
}

/// Who acts on a conversation: a signed-in person, or a service token (no user).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user: Option<UserId>,
    pub role: Role,
}

impl Actor {
    fn is(&self, user: Option<UserId>) -> bool {
        self.user.is_some() && self.user == user
    }

    /// Admins, supervisors and services act on anyone's conversations; agents on their own.
    fn oversees(&self) -> bool {
        self.user.is_none() || matches!(self.role, Role::Admin | Role::Supervisor)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Claim,
    Unclaim,
    Close,
    /// Hand the conversation to this user, who then holds the claim.
    Transfer {
        to: UserId,
    },
}

impl Action {
    /// The name recorded in the conversation's history.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Claim => "claimed",
            Action::Unclaim => "unclaimed",
            Action::Close => "closed",
            Action::Transfer { .. } => "transferred",
        }
    }
}

/// Why the workflow refuses an action. Each has a stable code and is either a clash with the
/// conversation's current state (409) or a lack of right (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Someone else holds the claim.
    ClaimedByOther,
    /// The action needs a claimed conversation.
    NotClaimed,
    /// Only the claimer (or an admin) may do this.
    NotAssignee,
    /// Transfers are for admins and supervisors.
    TransferNotAllowed,
    /// Claiming needs a person; a service token has none.
    UserRequired,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::ClaimedByOther => "conversation_claimed",
            Refusal::NotClaimed => "conversation_not_claimed",
            Refusal::NotAssignee => "not_assignee",
            Refusal::TransferNotAllowed => "transfer_not_allowed",
            Refusal::UserRequired => "user_required",
        }
    }

    /// Whether the refusal is about the conversation's state (it may pass later) rather than
    /// the actor's rights.
    pub fn is_conflict(self) -> bool {
        matches!(self, Refusal::ClaimedByOther | Refusal::NotClaimed)
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::ClaimedByOther => "another agent has claimed this conversation",
            Refusal::NotClaimed => "claim the conversation first",
            Refusal::NotAssignee => {
                "only the agent who claimed this conversation, or an admin, may do that"
            }
            Refusal::TransferNotAllowed => "only admins and supervisors transfer conversations",
            Refusal::UserRequired => {
                "a conversation is claimed by a person: use a token that acts for a user"
            }
        }
    }
}

/// Where `action` by `actor` takes a conversation that stands at `now`. An action that changes
/// nothing (claiming what one already holds, closing what is closed) is allowed and yields the
/// same assignment, so a retried request does no harm.
pub fn transition(now: Assignment, actor: Actor, action: Action) -> Result<Assignment, Refusal> {
    use ConversationState::*;
    match action {
        Action::Claim => {
            let user = actor.user.ok_or(Refusal::UserRequired)?;
            match now.state {
                Claimed if now.assignee == Some(user) => Ok(now),
                Claimed => Err(Refusal::ClaimedByOther),
                Unclaimed | Closed => Ok(Assignment::claimed_by(user)),
            }
        }
        Action::Unclaim => match now.state {
            Claimed if actor.is(now.assignee) || actor.role == Role::Admin => {
                Ok(Assignment::UNCLAIMED)
            }
            Claimed if actor.user.is_none() => Ok(Assignment::UNCLAIMED),
            Claimed => Err(Refusal::NotAssignee),
            Unclaimed | Closed => Err(Refusal::NotClaimed),
        },
        Action::Close => match now.state {
            Closed => Ok(now),
            Claimed if actor.is(now.assignee) || actor.oversees() => Ok(Assignment::CLOSED),
            Unclaimed if actor.oversees() => Ok(Assignment::CLOSED),
            Claimed | Unclaimed => Err(Refusal::NotAssignee),
        },
        Action::Transfer { to } => {
            if !actor.oversees() {
                return Err(Refusal::TransferNotAllowed);
            }
            Ok(Assignment::claimed_by(to))
        }
    }
}

/// What a send by `actor` into a conversation at `now` does to it: an agent replies only in a
/// conversation they have claimed; a new or closed conversation an agent writes into becomes
/// theirs (they started it); admins, supervisors-in-their-own-claim and services write
/// anywhere without changing the assignment. `fresh` is a conversation with no message yet.
pub fn reply(now: Assignment, actor: Actor, fresh: bool) -> Result<Assignment, Refusal> {
    use ConversationState::*;
    let Some(user) = actor.user else {
        return Ok(now);
    };
    if actor.role == Role::Admin {
        return Ok(now);
    }
    match now.state {
        Claimed if now.assignee == Some(user) => Ok(now),
        Claimed => Err(Refusal::ClaimedByOther),
        Closed => Ok(Assignment::claimed_by(user)),
        Unclaimed if fresh => Ok(Assignment::claimed_by(user)),
        Unclaimed => Err(Refusal::NotClaimed),
    }
}

/// How long a preview of the latest message the inbox list keeps.
pub const PREVIEW_CHARS: usize = 140;

/// The line the inbox list shows for a message: the start of its text, else what it carries.
pub fn preview(message: &crate::message::Message) -> String {
    let text = message
        .text
        .as_deref()
        .or_else(|| message.media.as_ref().and_then(|m| m.caption.as_deref()))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let line = match (text, &message.media, &message.template) {
        (Some(text), _, _) => text.to_owned(),
        (None, Some(media), _) => format!("[{}]", media.kind.as_str()),
        (None, None, Some(template)) => format!("[template {}]", template.name),
        (None, None, None) => String::new(),
    };
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent(u: UserId) -> Actor {
        Actor {
            user: Some(u),
            role: Role::Agent,
        }
    }

    fn person(u: UserId, role: Role) -> Actor {
        Actor {
            user: Some(u),
            role,
        }
    }

    const SERVICE: Actor = Actor {
        user: None,
        role: Role::Admin,
    };

    #[test]
    fn the_workflow_table() {
        let (a, b, boss) = (UserId::new(), UserId::new(), UserId::new());
        let admin = person(boss, Role::Admin);
        let supervisor = person(boss, Role::Supervisor);
        use Refusal::*;
        let unclaimed = Assignment::UNCLAIMED;
        let closed = Assignment::CLOSED;
        let by_a = Assignment::claimed_by(a);
        let by_b = Assignment::claimed_by(b);
        let table: Vec<(Assignment, Actor, Action, Result<Assignment, Refusal>)> = vec![
            // Claim: one agent at a time; claiming one's own again is harmless.
            (unclaimed, agent(a), Action::Claim, Ok(by_a)),
            (closed, agent(a), Action::Claim, Ok(by_a)),
            (by_a, agent(a), Action::Claim, Ok(by_a)),
            (by_a, agent(b), Action::Claim, Err(ClaimedByOther)),
            (by_a, admin, Action::Claim, Err(ClaimedByOther)),
            (unclaimed, SERVICE, Action::Claim, Err(UserRequired)),
            // Unclaim: only the claimer, or an admin.
            (by_a, agent(a), Action::Unclaim, Ok(unclaimed)),
            (by_a, agent(b), Action::Unclaim, Err(NotAssignee)),
            (by_a, supervisor, Action::Unclaim, Err(NotAssignee)),
            (by_a, admin, Action::Unclaim, Ok(unclaimed)),
            (unclaimed, agent(a), Action::Unclaim, Err(NotClaimed)),
            (closed, admin, Action::Unclaim, Err(NotClaimed)),
            // Transfer: admins and supervisors only, from any state.
            (
                by_a,
                agent(a),
                Action::Transfer { to: b },
                Err(TransferNotAllowed),
            ),
            (
                unclaimed,
                agent(a),
                Action::Transfer { to: a },
                Err(TransferNotAllowed),
            ),
            (by_a, admin, Action::Transfer { to: b }, Ok(by_b)),
            (by_a, supervisor, Action::Transfer { to: b }, Ok(by_b)),
            (closed, admin, Action::Transfer { to: b }, Ok(by_b)),
            (unclaimed, SERVICE, Action::Transfer { to: a }, Ok(by_a)),
            // Close: the assignee, or someone who oversees.
            (by_a, agent(a), Action::Close, Ok(closed)),
            (by_a, agent(b), Action::Close, Err(NotAssignee)),
            (unclaimed, agent(a), Action::Close, Err(NotAssignee)),
            (by_a, supervisor, Action::Close, Ok(closed)),
            (unclaimed, admin, Action::Close, Ok(closed)),
            (closed, agent(b), Action::Close, Ok(closed)),
        ];
        for (i, (now, actor, action, want)) in table.into_iter().enumerate() {
            assert_eq!(
                transition(now, actor, action),
                want,
                "row {i}: {action:?} by {actor:?} on {now:?}"
            );
        }
    }

    #[test]
    fn who_may_reply() {
        let (a, b) = (UserId::new(), UserId::new());
        let by_a = Assignment::claimed_by(a);
        assert_eq!(reply(by_a, agent(a), false), Ok(by_a));
        assert_eq!(reply(by_a, agent(b), false), Err(Refusal::ClaimedByOther));
        assert_eq!(
            reply(Assignment::UNCLAIMED, agent(a), false),
            Err(Refusal::NotClaimed)
        );
        // Starting a thread, or writing into a closed one, makes it the writer's.
        assert_eq!(reply(Assignment::UNCLAIMED, agent(a), true), Ok(by_a));
        assert_eq!(reply(Assignment::CLOSED, agent(a), false), Ok(by_a));
        // Admins and services write anywhere and change nothing.
        assert_eq!(reply(by_a, person(b, Role::Admin), false), Ok(by_a));
        assert_eq!(
            reply(Assignment::UNCLAIMED, SERVICE, false),
            Ok(Assignment::UNCLAIMED)
        );
        // A supervisor replies like an agent: they watch without claiming, and write by claiming.
        assert_eq!(
            reply(by_a, person(b, Role::Supervisor), false),
            Err(Refusal::ClaimedByOther)
        );
    }

    proptest! {
        /// Whatever the sequence of actions, a claimed conversation has exactly one assignee
        /// and an unclaimed or closed one has none; an agent never takes a conversation that
        /// someone else holds.
        #[test]
        fn assignments_stay_coherent(
            steps in proptest::collection::vec((0..3usize, 0..3usize, 0..4usize, 0..3usize), 1..40),
            start_index in 0..5usize,
        ) {
            let users = [UserId::new(), UserId::new(), UserId::new()];
            let roles = [Role::Agent, Role::Supervisor, Role::Admin];
            let start = match start_index {
                0 => Assignment::UNCLAIMED,
                1 => Assignment::CLOSED,
                i => Assignment::claimed_by(users[i - 2]),
            };
            let mut now = start;
            for (who, role, action, target) in steps {
                let actor = person(users[who], roles[role]);
                let action = match action {
                    0 => Action::Claim,
                    1 => Action::Unclaim,
                    2 => Action::Close,
                    _ => Action::Transfer { to: users[target] },
                };
                match transition(now, actor, action) {
                    Ok(next) => {
                        prop_assert_eq!(
                            next.state == ConversationState::Claimed,
                            next.assignee.is_some()
                        );
                        if roles[role] == Role::Agent && next.state == ConversationState::Claimed {
                            // An agent's action leaves the claim with that agent or where it was.
                            prop_assert!(next.assignee == Some(users[who]) || next == now);
                        }
                        now = next;
                    }
                    Err(refusal) => {
                        prop_assert!(!refusal.code().is_empty());
                    }
                }
            }
        }
    }
}
