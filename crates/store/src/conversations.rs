//! Conversations: the thread between one contact and one sender, its place in the workflow
//! (R5.2) and what the inbox list shows of it.

use switchboard_core::conversation::{Assignment, Conversation, ConversationState};
use switchboard_core::{Channel, ContactId, ConversationId, SenderId, UserId};
use time::OffsetDateTime;

use crate::rows::{at, ms, parse, parse_opt};
use crate::{Result, Store, StoreError};

const COLUMNS: &str = "c.id, c.contact_id, c.sender_id, c.channel, c.state, c.assignee_id, \
    c.last_message_at, c.last_inbound_at, c.waiting_since, c.unread_count, c.preview, \
    c.created_at, c.updated_at, c.activity_at";

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: String,
    contact_id: String,
    sender_id: String,
    channel: String,
    state: String,
    assignee_id: Option<String>,
    last_message_at: Option<i64>,
    last_inbound_at: Option<i64>,
    waiting_since: Option<i64>,
    unread_count: i64,
    preview: Option<String>,
    created_at: i64,
    updated_at: i64,
    activity_at: i64,
}

impl ConversationRow {
    fn into_domain(self) -> Result<Conversation> {
        Ok(Conversation {
            id: parse("conversations.id", &self.id)?,
            contact_id: parse("conversations.contact_id", &self.contact_id)?,
            sender_id: parse("conversations.sender_id", &self.sender_id)?,
            channel: parse("conversations.channel", &self.channel)?,
            state: parse("conversations.state", &self.state)?,
            assignee_id: parse_opt("conversations.assignee_id", self.assignee_id.as_deref())?,
            last_message_at: self.last_message_at.map(at),
            last_inbound_at: self.last_inbound_at.map(at),
            waiting_since: self.waiting_since.map(at),
            unread_count: self.unread_count,
            preview: self.preview,
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    contact_name: Option<String>,
    contact_phone: Option<String>,
}

/// A conversation as the inbox list shows it, with who it is with.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedConversation {
    pub conversation: Conversation,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
}

/// The inbox list's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConversationSort {
    /// Most recent message first.
    #[default]
    NewestActivity,
    /// Customers waiting for an answer, longest first; threads where the business spoke last
    /// are left out.
    OldestWaiting,
}

/// Filters for the inbox list. Every field narrows it.
#[derive(Clone, Debug, Default)]
pub struct ConversationFilter {
    pub state: Option<ConversationState>,
    pub channel: Option<Channel>,
    pub sender_id: Option<SenderId>,
    pub assignee_id: Option<UserId>,
    pub contact_id: Option<ContactId>,
    /// Only these senders' conversations (an agent sees the senders they may use).
    pub visible_senders: Option<Vec<SenderId>>,
    /// Words in the contact's name or phone, or in a message's text.
    pub search: Option<String>,
    pub sort: ConversationSort,
}

/// How many conversations each inbox tab holds for one viewer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TabCounts {
    pub unclaimed: i64,
    pub mine: i64,
    pub claimed: i64,
    pub closed: i64,
}

/// What a send does to its conversation: checked and applied in the send's own transaction,
/// so that a reply cannot slip into a conversation someone else claimed meanwhile.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplyGuard {
    pub expected: Assignment,
    pub next: Assignment,
    /// Recorded when the send moves the conversation (an agent starting or reopening it).
    pub event: ConversationEvent,
}

/// One move in a conversation's history.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationEvent {
    pub id: switchboard_core::ConversationEventId,
    pub conversation_id: ConversationId,
    /// `claimed`, `unclaimed`, `transferred`, `closed`, `reopened`.
    pub action: String,
    pub from: ConversationState,
    pub to: ConversationState,
    pub assignee_id: Option<UserId>,
    /// Who acted: `user:<id>`, `token:<id>`, `contact` or `system`.
    pub actor: String,
    pub at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    conversation_id: String,
    action: String,
    from_state: String,
    to_state: String,
    assignee_id: Option<String>,
    actor: String,
    at: i64,
}

/// A position in the inbox list: the sort key and id of the last item seen.
fn cursor_of(sort: ConversationSort, c: &ConversationRow) -> String {
    let key = match sort {
        ConversationSort::NewestActivity => c.activity_at,
        ConversationSort::OldestWaiting => c.waiting_since.unwrap_or_default(),
    };
    format!("{key}.{}", c.id)
}

fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    cursor
        .split_once('.')
        .and_then(|(key, id)| Some((key.parse().ok()?, id.to_owned())))
        .ok_or_else(|| StoreError::Config(format!("invalid cursor {cursor:?}")))
}

/// Searches this long or longer can be looked up in SQLite's trigram indexes.
const TRIGRAM_CHARS: usize = 3;

/// Indexes for search the waiting messages up to a rowid (`$1`) that are in a conversation.
pub(crate) const INDEX_WAITING_MESSAGES: &str =
    "INSERT INTO messages_search (rowid, text) SELECT m.rowid, m.text \
     FROM messages_search_pending p JOIN messages m ON m.rowid = p.message_rowid \
     WHERE p.message_rowid <= $1 AND m.conversation_id IS NOT NULL";
/// Then takes them off the waiting list.
pub(crate) const FORGET_WAITING_MESSAGES: &str =
    "DELETE FROM messages_search_pending WHERE message_rowid <= $1";
/// Up to this many matching messages and contacts, a search starts from the matches. Beyond,
/// the words are common enough that reading the list in its order finds a page of them soon,
/// while gathering every match and sorting them would not be quick.
const FEW_MATCHES: i64 = 2_000;

/// The words as one trigram phrase: any run of characters in any case, nothing special.
fn trigram_phrase(words: &str) -> String {
    format!("\"{}\"", words.trim().replace('"', "\"\""))
}

/// Escapes LIKE's wildcards so that searched text matches literally.
fn like_pattern(words: &str) -> String {
    let mut pattern = String::from("%");
    for c in words.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A value bound into a statement built from the filters present.
enum Bind {
    Text(String),
    Int(i64),
}

/// Adds a bound value and answers its placeholder.
fn bind(binds: &mut Vec<Bind>, value: Bind) -> String {
    binds.push(value);
    format!("${}", binds.len())
}

/// Inserts a conversation event inside the caller's transaction.
macro_rules! insert_conversation_event {
    ($tx:ident, $event:expr) => {{
        let event: &$crate::conversations::ConversationEvent = $event;
        sqlx::query(
            "INSERT INTO conversation_events (id, conversation_id, action, from_state, to_state, \
             assignee_id, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.id.to_string())
        .bind(event.conversation_id.to_string())
        .bind(&event.action)
        .bind(event.from.as_str())
        .bind(event.to.as_str())
        .bind(event.assignee_id.map(|u| u.to_string()))
        .bind(&event.actor)
        .bind($crate::rows::ms(event.at))
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Moves a conversation from `expected` to `next` inside the caller's transaction, only if it
/// still stands at `expected` (compare and set); yields whether it did.
macro_rules! move_conversation_row {
    ($tx:ident, $id:expr, $expected:expr, $next:expr, $now:expr) => {{
        let expected: switchboard_core::conversation::Assignment = $expected;
        let next: switchboard_core::conversation::Assignment = $next;
        let moved = sqlx::query(
            "UPDATE conversations SET state = $4, assignee_id = $5, updated_at = $6, \
             waiting_since = CASE WHEN $4 = 'closed' THEN NULL ELSE waiting_since END \
             WHERE id = $1 AND state = $2 AND COALESCE(assignee_id, '') = $3",
        )
        .bind($id)
        .bind(expected.state.as_str())
        .bind(expected.assignee.map(|u| u.to_string()).unwrap_or_default())
        .bind(next.state.as_str())
        .bind(next.assignee.map(|u| u.to_string()))
        .bind($crate::rows::ms($now))
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        moved == 1
    }};
}

pub(crate) use {insert_conversation_event, move_conversation_row};

impl Store {
    /// The conversation of a contact with a sender, created unclaimed if there is none yet.
    pub async fn ensure_conversation(
        &self,
        contact: ContactId,
        sender: SenderId,
        channel: Channel,
        now: OffsetDateTime,
    ) -> Result<ConversationId> {
        // Nearly always it exists already: a read then spares the single writer a transaction.
        let existing: Option<(String,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT id FROM conversations WHERE contact_id = $1 AND sender_id = $2")
                .bind(contact.to_string())
                .bind(sender.to_string())
                .fetch_optional(db)
                .await?
        });
        if let Some((id,)) = existing {
            return parse("conversations.id", &id);
        }
        let fresh = ConversationId::new();
        let (id,): (String,) = write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO conversations (id, contact_id, sender_id, channel, state, \
                 created_at, updated_at, activity_at) \
                 VALUES ($1, $2, $3, $4, 'unclaimed', $5, $5, $5) \
                 ON CONFLICT (contact_id, sender_id) DO NOTHING",
            )
            .bind(fresh.to_string())
            .bind(contact.to_string())
            .bind(sender.to_string())
            .bind(channel.as_str())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query_as("SELECT id FROM conversations WHERE contact_id = $1 AND sender_id = $2")
                .bind(contact.to_string())
                .bind(sender.to_string())
                .fetch_one(&mut *tx)
                .await?
        });
        parse("conversations.id", &id)
    }

    /// Makes sure each (contact, sender, channel) has its conversation, a batch in one
    /// transaction; those that exist already are left as they are.
    pub async fn ensure_conversations(
        &self,
        pairs: &[(ContactId, SenderId, Channel)],
        now: OffsetDateTime,
    ) -> Result<()> {
        // Seven parameters a conversation: well under both engines' limits.
        const ROWS: usize = 500;
        if pairs.is_empty() {
            return Ok(());
        }
        write_tx!(self, |tx| {
            for chunk in pairs.chunks(ROWS) {
                let sql = format!(
                    "INSERT INTO conversations (id, contact_id, sender_id, channel, state, \
                     created_at, updated_at, activity_at) VALUES {} \
                     ON CONFLICT (contact_id, sender_id) DO NOTHING",
                    crate::rows::rows_like(chunk.len(), "(?, ?, ?, ?, 'unclaimed', ?, ?, ?)")
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                let mut query = sqlx::query(&sql);
                for (contact, sender, channel) in chunk {
                    query = query
                        .bind(ConversationId::new().to_string())
                        .bind(contact.to_string())
                        .bind(sender.to_string())
                        .bind(channel.as_str())
                        .bind(ms(now))
                        .bind(ms(now))
                        .bind(ms(now));
                }
                query.execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// The conversations of these contacts with this sender, by contact, each with when its
    /// customer last wrote (the customer-service window), in one read.
    pub async fn conversations_with(
        &self,
        sender: SenderId,
        contacts: &[ContactId],
    ) -> Result<Vec<(ContactId, ConversationId, Option<OffsetDateTime>)>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String, Option<i64>)> = read_pool!(self, |db| {
            let (list, _) = crate::bulk::in_list(db, 2, false);
            let sql = format!(
                "SELECT contact_id, id, last_inbound_at FROM conversations \
                 WHERE sender_id = $1 AND contact_id {list}"
            );
            let sql = crate::rows::sql_for(db, sql);
            let query = sqlx::query_as(&sql).bind(sender.to_string());
            crate::bulk::bind_list(db, query, contacts)
                .fetch_all(db)
                .await?
        });
        rows.into_iter()
            .map(|(contact, id, last_inbound)| {
                Ok((
                    parse("conversations.contact_id", &contact)?,
                    parse("conversations.id", &id)?,
                    last_inbound.map(crate::rows::at),
                ))
            })
            .collect()
    }

    /// The contact and sender of a conversation.
    pub async fn conversation_pair(&self, id: ConversationId) -> Result<(ContactId, SenderId)> {
        let row: Option<(String, String)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT contact_id, sender_id FROM conversations WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        let (contact, sender) = row.ok_or(crate::StoreError::NotFound)?;
        Ok((
            parse("conversations.contact_id", &contact)?,
            parse("conversations.sender_id", &sender)?,
        ))
    }

    pub async fn get_conversation(&self, id: ConversationId) -> Result<Conversation> {
        let sql = format!("SELECT {COLUMNS} FROM conversations c WHERE c.id = $1");
        let row: Option<ConversationRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.into_domain()
    }

    /// The conversation of a contact with a sender, if they have one.
    pub async fn find_conversation(
        &self,
        contact: ContactId,
        sender: SenderId,
    ) -> Result<Option<Conversation>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM conversations c WHERE c.contact_id = $1 AND c.sender_id = $2"
        );
        let row: Option<ConversationRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(contact.to_string())
                .bind(sender.to_string())
                .fetch_optional(db)
                .await?
        });
        row.map(ConversationRow::into_domain).transpose()
    }

    /// The inbox list: conversations matching `filter`, in its order, `limit` at a time after
    /// `cursor` (the `next_cursor` of the page before). Answers the page and the next cursor.
    pub async fn list_conversations(
        &self,
        filter: &ConversationFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<(Vec<ListedConversation>, Option<String>)> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        // Only the filters present go into the statement, so that the planner sees plain
        // equalities and picks the matching index.
        if let Some(state) = filter.state {
            let p = bind(&mut binds, Bind::Text(state.as_str().to_owned()));
            clauses.push(format!("c.state = {p}"));
        }
        if let Some(channel) = filter.channel {
            let p = bind(&mut binds, Bind::Text(channel.as_str().to_owned()));
            clauses.push(format!("c.channel = {p}"));
        }
        if let Some(sender) = filter.sender_id {
            let p = bind(&mut binds, Bind::Text(sender.to_string()));
            clauses.push(format!("c.sender_id = {p}"));
        }
        if let Some(assignee) = filter.assignee_id {
            let p = bind(&mut binds, Bind::Text(assignee.to_string()));
            clauses.push(format!("c.assignee_id = {p}"));
        }
        if let Some(contact) = filter.contact_id {
            let p = bind(&mut binds, Bind::Text(contact.to_string()));
            clauses.push(format!("c.contact_id = {p}"));
        }
        if let Some(senders) = &filter.visible_senders {
            if senders.is_empty() {
                return Ok((Vec::new(), None));
            }
            let list: Vec<String> = senders
                .iter()
                .map(|s| bind(&mut binds, Bind::Text(s.to_string())))
                .collect();
            // The senders an agent may use are most of them, as a rule: the list is read in
            // its order and these checked on the way. On SQLite the `+` keeps the planner from
            // starting at the sender index and sorting every conversation of those senders.
            let column = match self {
                Store::Sqlite(_) => "+c.sender_id",
                Store::Postgres(_) => "c.sender_id",
            };
            clauses.push(format!("{column} IN ({})", list.join(", ")));
        }
        let mut from = String::from("conversations c");
        if let Some(words) = filter.search.as_deref().filter(|w| !w.trim().is_empty()) {
            self.catch_up_search().await?;
            if self.few_search_matches(words).await? {
                let p = bind(&mut binds, Bind::Text(trigram_phrase(words)));
                // Forced to start from the matches (CROSS JOIN keeps SQLite's join order):
                // a few conversations, sorted, rather than every conversation checked.
                from = format!(
                    "(SELECT m.conversation_id AS id FROM messages m WHERE m.rowid IN \
                     (SELECT rowid FROM messages_search WHERE messages_search MATCH {p}) \
                     UNION SELECT hc.id FROM conversations hc WHERE hc.contact_id IN \
                     (SELECT hct.id FROM contacts hct WHERE hct.rowid IN \
                     (SELECT rowid FROM contacts_search WHERE contacts_search MATCH {p}))) hits \
                     CROSS JOIN conversations c ON c.id = hits.id"
                );
            } else {
                let p = bind(&mut binds, Bind::Text(like_pattern(words)));
                clauses.push(format!(
                    "(LOWER(ct.name) LIKE {p} ESCAPE '\\' OR ct.phone LIKE {p} ESCAPE '\\' \
                     OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id \
                     AND LOWER(m.text) LIKE {p} ESCAPE '\\'))"
                ));
            }
        }
        let (key, direction) = match filter.sort {
            ConversationSort::NewestActivity => ("c.activity_at", "DESC"),
            ConversationSort::OldestWaiting => {
                clauses.push("c.waiting_since IS NOT NULL".to_owned());
                ("c.waiting_since", "ASC")
            }
        };
        if let Some(cursor) = cursor {
            let (after_key, after_id) = parse_cursor(cursor)?;
            let k = bind(&mut binds, Bind::Int(after_key));
            let i = bind(&mut binds, Bind::Text(after_id));
            let cmp = if direction == "DESC" { "<" } else { ">" };
            clauses.push(format!(
                "({key} {cmp} {k} OR ({key} = {k} AND c.id {cmp} {i}))"
            ));
        }
        let limit_param = bind(&mut binds, Bind::Int(i64::from(limit) + 1));
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS}, ct.name AS contact_name, ct.phone AS contact_phone \
             FROM {from} JOIN contacts ct ON ct.id = c.contact_id {where_sql} \
             ORDER BY {key} {direction}, c.id {direction} LIMIT {limit_param}"
        );
        let mut rows: Vec<ListedRow> = read_pool!(self, |db| {
            let mut query = sqlx::query_as(&sql);
            for value in &binds {
                query = match value {
                    Bind::Text(s) => query.bind(s.as_str()),
                    Bind::Int(n) => query.bind(*n),
                };
            }
            query.fetch_all(db).await?
        });
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| cursor_of(filter.sort, &r.conversation))
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|r| {
                Ok(ListedConversation {
                    conversation: r.conversation.into_domain()?,
                    contact_name: r.contact_name,
                    contact_phone: r.contact_phone,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((items, next))
    }

    /// Puts up to `limit` messages waiting for SQLite's search index into it, oldest first,
    /// in one transaction: indexed together they cost a seventh of what each indexed by the
    /// statement writing it did (see migration 0013). Answers how many were taken (those
    /// that left their conversation meanwhile are taken without being indexed); `None` on
    /// PostgreSQL, which has no such index. A background task calls it while messages come
    /// in, and a search calls it first, so that a search finds what was just written.
    pub async fn index_search_backlog(&self, limit: i64) -> Result<Option<u64>> {
        let Store::Sqlite(backend) = self else {
            return Ok(None);
        };
        // Asked of a reader first: nearly always there is nothing, and then the writer is
        // not held up for it.
        let waiting: Option<i64> =
            sqlx::query_scalar("SELECT message_rowid FROM messages_search_pending LIMIT 1")
                .fetch_optional(&backend.reader)
                .await?;
        if waiting.is_none() {
            return Ok(Some(0));
        }
        let taken = write_tx!(self, |tx| {
            let upto: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(message_rowid) FROM (SELECT message_rowid \
                 FROM messages_search_pending ORDER BY message_rowid LIMIT $1)",
            )
            .bind(limit)
            .fetch_one(&mut *tx)
            .await?;
            match upto {
                Some(upto) => {
                    sqlx::query(INDEX_WAITING_MESSAGES)
                        .bind(upto)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(FORGET_WAITING_MESSAGES)
                        .bind(upto)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
                None => 0,
            }
        });
        Ok(Some(taken))
    }

    /// Indexes every message still waiting for search, so that a search sees them all.
    async fn catch_up_search(&self) -> Result<()> {
        const BATCH: i64 = 10_000;
        while self.index_search_backlog(BATCH).await? == Some(BATCH as u64) {}
        Ok(())
    }

    /// Whether a search is best started from its matches: on SQLite, when the trigram
    /// indexes can look it up and it matches few messages and contacts.
    async fn few_search_matches(&self, words: &str) -> Result<bool> {
        let Store::Sqlite(backend) = self else {
            return Ok(false);
        };
        if words.trim().chars().count() < TRIGRAM_CHARS {
            return Ok(false);
        }
        let (matches,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM messages_search \
             WHERE messages_search MATCH $1 LIMIT $2)) \
             + (SELECT COUNT(*) FROM (SELECT 1 FROM contacts_search \
             WHERE contacts_search MATCH $1 LIMIT $2))",
        )
        .bind(trigram_phrase(words))
        .bind(FEW_MATCHES + 1)
        .fetch_one(&backend.reader)
        .await?;
        Ok(matches <= FEW_MATCHES)
    }

    /// How many conversations each inbox tab holds for `viewer`, within `visible_senders`
    /// when given.
    pub async fn conversation_tab_counts(
        &self,
        viewer: Option<UserId>,
        visible_senders: Option<&[SenderId]>,
    ) -> Result<TabCounts> {
        let senders: Vec<String> = visible_senders
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        let within = match visible_senders {
            Some([]) => return Ok(TabCounts::default()),
            Some(_) => {
                let list: Vec<String> = (0..senders.len()).map(|i| format!("${}", i + 2)).collect();
                format!(" AND sender_id IN ({})", list.join(", "))
            }
            None => String::new(),
        };
        // One count a tab, each a range of an index (state, or sender and state, or assignee
        // and state) counted without reading the conversations themselves.
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM conversations WHERE state = 'unclaimed'{within}), \
             (SELECT COUNT(*) FROM conversations WHERE state = 'claimed' AND assignee_id = $1\
             {within}), \
             (SELECT COUNT(*) FROM conversations WHERE state = 'claimed'{within}), \
             (SELECT COUNT(*) FROM conversations WHERE state = 'closed'{within})"
        );
        let viewer = viewer.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
        let (unclaimed, mine, claimed, closed): (i64, i64, i64, i64) = read_pool!(self, |db| {
            let mut query = sqlx::query_as(&sql).bind(viewer.as_str());
            for s in &senders {
                query = query.bind(s.as_str());
            }
            query.fetch_one(db).await?
        });
        Ok(TabCounts {
            unclaimed,
            mine,
            claimed,
            closed,
        })
    }

    /// Moves a conversation from `expected` to `next` and records `event`, in one
    /// transaction, only if it still stands at `expected`. Answers whether it moved: `false`
    /// means someone else moved it first, and the caller decides again on what it is now.
    pub async fn move_conversation(
        &self,
        expected: Assignment,
        next: Assignment,
        event: &ConversationEvent,
    ) -> Result<bool> {
        let id = event.conversation_id.to_string();
        let moved = write_tx!(self, |tx| {
            let moved = move_conversation_row!(tx, &id, expected, next, event.at);
            if moved && expected != next {
                insert_conversation_event!(tx, event);
            }
            moved
        });
        Ok(moved)
    }

    /// A conversation's history of moves, oldest first.
    pub async fn conversation_events(&self, id: ConversationId) -> Result<Vec<ConversationEvent>> {
        let rows: Vec<EventRow> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT id, conversation_id, action, from_state, to_state, assignee_id, actor, at \
                 FROM conversation_events WHERE conversation_id = $1 ORDER BY id",
            )
            .bind(id.to_string())
            .fetch_all(db)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(ConversationEvent {
                    id: parse("conversation_events.id", &r.id)?,
                    conversation_id: parse(
                        "conversation_events.conversation_id",
                        &r.conversation_id,
                    )?,
                    action: r.action,
                    from: parse("conversation_events.from_state", &r.from_state)?,
                    to: parse("conversation_events.to_state", &r.to_state)?,
                    assignee_id: parse_opt(
                        "conversation_events.assignee_id",
                        r.assignee_id.as_deref(),
                    )?,
                    actor: r.actor,
                    at: at(r.at),
                })
            })
            .collect()
    }

    /// Clears a conversation's unread count: someone has read it.
    pub async fn mark_conversation_read(&self, id: ConversationId) -> Result<()> {
        let id = id.to_string();
        write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE conversations SET unread_count = 0 WHERE id = $1 AND unread_count <> 0",
            )
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }
}
