//! Roles and permissions (R8.3). A principal's permissions are its role's, narrowed by the
//! scopes of the token it authenticated with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Supervisor, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
        }
    }

    /// Everything this role may do.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        const AGENT: &[Permission] = &[
            SendersRead,
            ContactsRead,
            ContactsWrite,
            MessagesRead,
            MessagesSend,
            TemplatesRead,
            CampaignsRead,
        ];
        const SUPERVISOR: &[Permission] = &[
            SendersRead,
            ContactsRead,
            ContactsWrite,
            MessagesRead,
            MessagesSend,
            TemplatesRead,
            UsersRead,
            TemplatesWrite,
            SettingsRead,
            CampaignsRead,
            CampaignsWrite,
        ];
        match self {
            Role::Agent => AGENT,
            Role::Supervisor => SUPERVISOR,
            Role::Admin => Permission::ALL,
        }
    }

    pub fn has(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: expected admin, supervisor or agent"))
    }
}

/// One thing a principal may do. The wire form (`contacts:write`) is what token scopes list and
/// what a 403 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Permission {
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:write")]
    UsersWrite,
    #[serde(rename = "tokens:read")]
    TokensRead,
    #[serde(rename = "tokens:write")]
    TokensWrite,
    #[serde(rename = "senders:read")]
    SendersRead,
    #[serde(rename = "senders:write")]
    SendersWrite,
    #[serde(rename = "contacts:read")]
    ContactsRead,
    #[serde(rename = "contacts:write")]
    ContactsWrite,
    #[serde(rename = "messages:read")]
    MessagesRead,
    #[serde(rename = "messages:send")]
    MessagesSend,
    /// Record inbound messages (providers' webhooks, the sandbox, importers).
    #[serde(rename = "messages:receive")]
    MessagesReceive,
    #[serde(rename = "templates:read")]
    TemplatesRead,
    #[serde(rename = "templates:write")]
    TemplatesWrite,
    #[serde(rename = "settings:read")]
    SettingsRead,
    #[serde(rename = "settings:write")]
    SettingsWrite,
    /// See campaigns and their hoppers.
    #[serde(rename = "campaigns:read")]
    CampaignsRead,
    /// Create, start, pause, stop and retry campaigns: bulk sends in the business's name.
    #[serde(rename = "campaigns:write")]
    CampaignsWrite,
}

impl Permission {
    pub const ALL: &'static [Permission] = &[
        Permission::UsersRead,
        Permission::UsersWrite,
        Permission::TokensRead,
        Permission::TokensWrite,
        Permission::SendersRead,
        Permission::SendersWrite,
        Permission::ContactsRead,
        Permission::ContactsWrite,
        Permission::MessagesRead,
        Permission::MessagesSend,
        Permission::MessagesReceive,
        Permission::TemplatesRead,
        Permission::TemplatesWrite,
        Permission::SettingsRead,
        Permission::SettingsWrite,
        Permission::CampaignsRead,
        Permission::CampaignsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
            Permission::TokensRead => "tokens:read",
            Permission::TokensWrite => "tokens:write",
            Permission::SendersRead => "senders:read",
            Permission::SendersWrite => "senders:write",
            Permission::ContactsRead => "contacts:read",
            Permission::ContactsWrite => "contacts:write",
            Permission::MessagesRead => "messages:read",
            Permission::MessagesSend => "messages:send",
            Permission::MessagesReceive => "messages:receive",
            Permission::TemplatesRead => "templates:read",
            Permission::TemplatesWrite => "templates:write",
            Permission::SettingsRead => "settings:read",
            Permission::SettingsWrite => "settings:write",
            Permission::CampaignsRead => "campaigns:read",
            Permission::CampaignsWrite => "campaigns:write",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown permission `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        for p in Role::Agent.permissions() {
            assert!(Role::Supervisor.has(*p), "{p}");
        }
        for p in Role::Supervisor.permissions() {
            assert!(Role::Admin.has(*p), "{p}");
        }
    }

    #[test]
    fn only_admins_manage_users_tokens_and_senders() {
        for p in [
            Permission::UsersWrite,
            Permission::TokensWrite,
            Permission::SendersWrite,
        ] {
            assert!(Role::Admin.has(p));
            assert!(!Role::Supervisor.has(p));
            assert!(!Role::Agent.has(p));
        }
    }

    #[test]
    fn permissions_round_trip_through_their_wire_names() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), *p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
