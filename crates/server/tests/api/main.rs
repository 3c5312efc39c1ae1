//! Black-box tests of the HTTP API: the real server on port 0, a fresh database per test, and
//! every test run on SQLite and on PostgreSQL.

mod helpers;

mod campaigns;
mod contacts;
mod conversations;
mod dispatch;
mod lists;
mod media;
mod messages;
mod policy;
mod providers;
mod sandbox;
mod senders;
mod system;
mod template_submission;
mod tokens;
mod uploads;
mod users;
mod web;
mod webhooks;
