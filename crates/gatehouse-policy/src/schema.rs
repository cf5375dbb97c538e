//! The Cedar schema of Gatehouse's entities. Every policy, generated or hand-written, is
//! validated against it at load, so a typo in an attribute name fails the load instead of
//! silently never matching.

/// The attributes every principal type carries.
const SUBJECT: &str = "{
    id: String,
    tenant?: String,
    roles: Set<String>,
    groups: Set<String>,
    scopes: Set<String>,
    acr?: String,
    amr: Set<String>,
    method: String,
  }";

/// Cedar schema text (namespace `Gatehouse`).
pub(crate) fn text() -> String {
    format!(
        r#"namespace Gatehouse {{
  // Roles and groups are parents of principals: `principal in Gatehouse::Role::"analyst"`.
  // Role inheritance is resolved before a decision, so a principal is `in` every role it
  // holds directly or by inheritance.
  entity Role;
  entity Group;
  // Principals. Mapped claims are tags, each a set of strings:
  // `principal.hasTag("department") && principal.getTag("department").contains("oncology")`.
  entity User in [Role, Group] = {SUBJECT} tags Set<String>;
  entity Service in [Role, Group] = {SUBJECT} tags Set<String>;
  entity Server = {{ tenant?: String, shared: Bool }};
  // `level`: 0 public, 1 internal, 2 confidential, 3 restricted.
  entity Tool in [Server] = {{
    name: String, original: String, server: String,
    tenant?: String, shared: Bool,
    classification: String, level: Long,
    verb: String,
    read_only: Bool, destructive: Bool, idempotent: Bool, open_world: Bool,
  }};
  entity Prompt in [Server] = {{
    name: String, original: String, server: String,
    tenant?: String, shared: Bool,
    classification: String, level: Long,
  }};
  entity Resource in [Server] = {{
    uri: String, server: String,
    tenant?: String, shared: Bool,
    classification: String, level: Long,
  }};
  // The call's top-level arguments as tags; non-string values as their JSON text:
  // `context.arguments.hasTag("region") && context.arguments.getTag("region") == "APAC"`.
  entity Arguments tags String;
  type Situation = {{
    listing: Bool,
    now: Long,
    arguments: Arguments,
    client?: String,
    source_ip?: ipaddr,
    auth_age?: Long,
  }};
  action call_tool appliesTo {{ principal: [User, Service], resource: [Tool], context: Situation }};
  action get_prompt appliesTo {{ principal: [User, Service], resource: [Prompt], context: Situation }};
  action read_resource appliesTo {{ principal: [User, Service], resource: [Resource], context: Situation }};
  action subscribe_resource appliesTo {{ principal: [User, Service], resource: [Resource], context: Situation }};
  action complete appliesTo {{ principal: [User, Service], resource: [Prompt, Resource], context: Situation }};
}}
"#
    )
}

/// Built in and always present: a grant never crosses tenants unless the server is shared.
pub(crate) const TENANT_ISOLATION: &str = r#"@id("gatehouse.tenant_isolation")
forbid (principal, action, resource)
when {
  resource has tenant && !resource.shared &&
  !(principal has tenant && principal.tenant == resource.tenant)
};
"#;
