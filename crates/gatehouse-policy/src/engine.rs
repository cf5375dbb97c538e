//! The evaluator: policies (generated from roles, built in, and operators' `.cedar` files)
//! validated against the schema at load, and one decision per request. Default deny; a
//! forbid wins over any permit; a forbid that fails to evaluate denies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde_json::Value;

use crate::PolicyError;
use crate::model::{Action, Situation, Subject, Target, Tenancy};
use crate::roles::{RoleSpec, Roles};
use crate::schema;

/// A `.cedar` file's text and the name errors and explanations cite.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

/// What the engine is built from.
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    pub roles: BTreeMap<String, RoleSpec>,
    pub files: Vec<PolicySource>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyCause {
    /// No policy permits it (default deny).
    NoPermit,
    /// A forbid policy matched.
    Forbidden,
    /// A forbid policy could not be evaluated, or the request could not be formed: denied
    /// because the control could not decide.
    Error,
}

/// One decision and the policies that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        policies: Vec<String>,
    },
    Deny {
        policies: Vec<String>,
        cause: DenyCause,
    },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The ids of the policies that decided (for a default deny: none).
    pub fn policies(&self) -> &[String] {
        match self {
            Decision::Allow { policies } | Decision::Deny { policies, .. } => policies,
        }
    }
}

/// Bounds of the memo tables: when one is full it is cleared, never grown.
const MAX_SLICES: usize = 4096;
const MAX_DECISIONS: usize = 1 << 16;

/// The policies that can apply to principals holding one set of roles: those scoped to
/// one of the roles, and every policy not scoped to a role.
#[derive(Debug)]
struct Slice {
    set: PolicySet,
    /// Some policy in it reads the context beyond `context.listing` (arguments, time,
    /// client, address): its decisions are never memoized.
    dynamic: bool,
}

/// The compiled policy set. Immutable; a reload builds a new one and swaps it in whole,
/// memo tables included.
///
/// Decisions are pure functions of their inputs, so two memo tables make them cheap:
/// the slice of policies per set of effective roles (a policy scoped to a role a principal
/// lacks can never match), and, for slices that read nothing of the context but
/// `context.listing`, the decision per (principal facts, action, target facts, listing).
/// Keys are 128-bit keyed hashes of the complete facts.
pub struct Engine {
    schema: Schema,
    policies: PolicySet,
    authorizer: Authorizer,
    roles: Roles,
    /// Policy id → where it came from (`roles`, `built-in` or a file name) and its text.
    origins: BTreeMap<String, (String, String)>,
    /// Per policy: the role its principal scope names (`in Gatehouse::Role::"…"`), if
    /// any, and whether it reads the context beyond `context.listing`.
    index: Vec<(Policy, Option<String>, bool)>,
    /// Argument conditions of role grants, checked after Cedar (see [`crate::Compiled`]).
    conditions: HashMap<String, BTreeMap<String, crate::roles::Condition>>,
    /// Permit policies annotated `@approval`: what they allow waits for a person.
    approval: HashSet<String>,
    slices: Mutex<HashMap<Vec<String>, Arc<Slice>>>,
    decisions: Mutex<HashMap<(u64, u64), Decision>>,
    hashers: (RandomState, RandomState),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.origins.len())
            .finish()
    }
}

/// A principal turned into its entity once, for deciding many targets (list filtering).
#[derive(Debug, Clone)]
pub struct Prepared {
    subject: Subject,
    effective: Vec<String>,
    /// Built on first evaluation: a memoized decision never needs it.
    entity: OnceLock<Result<(EntityUid, Entity), PolicyError>>,
    slice: Arc<Slice>,
    /// Keyed hashes of every fact of the principal.
    fingerprint: (u64, u64),
}

impl Prepared {
    /// The subject it was prepared from.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The principal's entity: its effective roles and groups as parents, mapped claims as
    /// tags.
    fn entity(&self) -> Result<&(EntityUid, Entity), PolicyError> {
        self.entity
            .get_or_init(|| principal_entity(&self.subject, &self.effective))
            .as_ref()
            .map_err(Clone::clone)
    }
}

fn principal_entity(s: &Subject, effective: &[String]) -> Result<(EntityUid, Entity), PolicyError> {
    let ty = if s.service {
        "Gatehouse::Service"
    } else {
        "Gatehouse::User"
    };
    let me = uid(ty, &s.id);
    let mut attrs = vec![
        ("id".to_owned(), string(&s.id)),
        ("roles".into(), strings(&s.roles)),
        ("groups".into(), strings(&s.groups)),
        ("scopes".into(), strings(&s.scopes)),
        ("amr".into(), strings(&s.amr)),
        ("method".into(), string(&s.method)),
    ];
    if let Some(t) = &s.tenant {
        attrs.push(("tenant".into(), string(t)));
    }
    if let Some(a) = &s.acr {
        attrs.push(("acr".into(), string(a)));
    }
    let parents = effective
        .iter()
        .map(|r| uid("Gatehouse::Role", r))
        .chain(s.groups.iter().map(|g| uid("Gatehouse::Group", g)))
        .collect::<HashSet<_>>();
    let tags = s.attributes.iter().map(|(k, v)| (k.clone(), tag_set(v)));
    let entity = Entity::new_with_tags(me.clone(), attrs, parents, tags)
        .map_err(|e| PolicyError::Request(e.to_string()))?;
    Ok((me, entity))
}

/// Whether a policy's text reads the context beyond `context.listing`. Conservative: any
/// other occurrence of the word (even inside a string) counts.
fn reads_context(text: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices("context").any(|(i, w)| {
        let before = text[..i].chars().next_back();
        let after = &text[i + w.len()..];
        let word =
            before.is_none_or(|c| !ident(c)) && after.chars().next().is_none_or(|c| !ident(c));
        let listing = after
            .strip_prefix(".listing")
            .is_some_and(|a| a.chars().next().is_none_or(|c| !ident(c)));
        word && !listing
    })
}

fn type_name(name: &str) -> EntityTypeName {
    // The names below are constants of the schema: parsing cannot fail.
    EntityTypeName::from_str(name).unwrap_or_else(|_| unreachable_type(name))
}

#[cold]
fn unreachable_type(name: &str) -> EntityTypeName {
    panic!("invalid built-in entity type {name}")
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(ty), EntityId::new(id))
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(|s| string(s)))
}

/// A JSON value as the strings a principal tag holds.
fn tag_set(v: &Value) -> RestrictedExpression {
    let one = |v: &Value| match v {
        Value::String(s) => string(s),
        other => string(&other.to_string()),
    };
    match v {
        Value::Array(items) => RestrictedExpression::new_set(items.iter().map(one)),
        other => RestrictedExpression::new_set([one(other)]),
    }
}

fn tenancy_attrs(t: &Tenancy, attrs: &mut Vec<(String, RestrictedExpression)>) {
    if let Some(tenant) = &t.tenant {
        attrs.push(("tenant".into(), string(tenant)));
    }
    attrs.push(("shared".into(), RestrictedExpression::new_bool(t.shared)));
}

impl Engine {
    /// Compiles and validates every policy. Any parse or validation error fails the whole
    /// build: a policy set is loaded entirely or not at all.
    pub fn build(spec: &PolicySpec) -> Result<Engine, PolicyError> {
        let (schema, _) = Schema::from_cedarschema_str(&schema::text())
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let roles = Roles::new(&spec.roles)?;
        let mut sources: Vec<(String, String, String)> = Vec::new(); // (origin, id hint, text)
        sources.push((
            "built-in".into(),
            String::new(),
            schema::TENANT_ISOLATION.into(),
        ));
        let mut conditions = HashMap::new();
        for c in roles.compile() {
            if !c.when.is_empty() {
                conditions.insert(c.id.clone(), c.when);
            }
            sources.push(("roles".into(), c.display, c.cedar));
        }
        for f in &spec.files {
            sources.push((f.name.clone(), String::new(), f.text.clone()));
        }
        let mut policies = PolicySet::new();
        let mut origins = BTreeMap::new();
        let mut approval = HashSet::new();
        for (origin, display, text) in &sources {
            let parsed = PolicySet::from_str(text).map_err(|e| PolicyError::Parse {
                source_name: origin.clone(),
                reason: e.to_string(),
            })?;
            if parsed.templates().next().is_some() {
                return Err(PolicyError::Parse {
                    source_name: origin.clone(),
                    reason: "templates are not supported; write policies".into(),
                });
            }
            let mut n = 0usize;
            for p in parsed.policies() {
                n += 1;
                let id = match p.annotation("id") {
                    Some(id) => id.to_owned(),
                    None => format!("{origin}#{n}"),
                };
                if origin != "built-in"
                    && origin != "roles"
                    && (id.starts_with("gatehouse.") || id.starts_with("role."))
                {
                    return Err(PolicyError::Parse {
                        source_name: origin.clone(),
                        reason: format!("policy id `{id}` uses a reserved prefix"),
                    });
                }
                if p.annotation("approval").is_some() {
                    if p.effect() != Effect::Permit {
                        return Err(PolicyError::Parse {
                            source_name: origin.clone(),
                            reason: format!(
                                "policy `{id}`: @approval applies to permit policies only"
                            ),
                        });
                    }
                    approval.insert(id.clone());
                }
                let policy: Policy = p.new_id(PolicyId::new(&id));
                let text = if display.is_empty() {
                    policy.to_string()
                } else {
                    display.clone()
                };
                policies.add(policy).map_err(|_| PolicyError::Parse {
                    source_name: origin.clone(),
                    reason: format!("duplicate policy id `{id}`"),
                })?;
                origins.insert(id, (origin.clone(), text));
            }
        }
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(|e| format!("{}: {e}", e.policy_id()))
                .collect();
            return Err(PolicyError::Invalid(errors.join("; ")));
        }
        let role_type = type_name("Gatehouse::Role");
        let index = policies
            .policies()
            .map(|p| {
                let role = match p.principal_constraint() {
                    PrincipalConstraint::In(e) if e.type_name() == &role_type => {
                        Some(e.id().unescaped().to_owned())
                    }
                    _ => None,
                };
                (p.clone(), role, reads_context(&p.to_string()))
            })
            .collect();
        Ok(Engine {
            schema,
            policies,
            authorizer: Authorizer::new(),
            roles,
            origins,
            index,
            conditions,
            approval,
            slices: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
            hashers: (RandomState::new(), RandomState::new()),
        })
    }

    /// Whether an allow by these policies holds only with a person's approval: every one of
    /// them is annotated `@approval` (a grant without it allows the call outright).
    pub fn requires_approval(&self, allowed_by: &[String]) -> bool {
        !allowed_by.is_empty() && allowed_by.iter().all(|id| self.approval.contains(id))
    }

    /// The number of policies loaded (built-in ones included).
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// Where a policy came from and its text, for explanations.
    pub fn policy(&self, id: &str) -> Option<(&str, &str)> {
        self.origins.get(id).map(|(o, t)| (o.as_str(), t.as_str()))
    }

    /// Every policy id with its origin.
    pub fn policy_ids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.origins
            .iter()
            .map(|(id, (o, _))| (id.as_str(), o.as_str()))
    }

    pub fn schema_text() -> String {
        schema::text()
    }

    /// The policies that can apply to principals with these effective roles (sorted).
    fn slice(&self, roles: &[String]) -> Result<Arc<Slice>, PolicyError> {
        let mut slices = self.slices.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = slices.get(roles) {
            return Ok(s.clone());
        }
        let mut set = PolicySet::new();
        let mut dynamic = false;
        for (p, role, reads) in &self.index {
            if role.as_ref().is_none_or(|r| roles.binary_search(r).is_ok()) {
                set.add(p.clone())
                    .map_err(|e| PolicyError::Request(e.to_string()))?;
                dynamic |= *reads;
            }
        }
        let slice = Arc::new(Slice { set, dynamic });
        if slices.len() >= MAX_SLICES {
            slices.clear();
        }
        slices.insert(roles.to_vec(), slice.clone());
        Ok(slice)
    }

    /// Two independently keyed hashes of what `f` feeds.
    fn hash_pair(&self, f: impl Fn(&mut dyn Hasher)) -> (u64, u64) {
        let mut a = self.hashers.0.build_hasher();
        let mut b = self.hashers.1.build_hasher();
        f(&mut a);
        f(&mut b);
        (a.finish(), b.finish())
    }

    /// The principal's entity: its effective roles and groups as parents, mapped claims as
    /// tags.
    pub fn prepare(&self, s: &Subject) -> Result<Prepared, PolicyError> {
        self.prepare_owned(s.clone())
    }

    /// Like [`Engine::prepare`], keeping the subject without copying it.
    pub fn prepare_owned(&self, s: Subject) -> Result<Prepared, PolicyError> {
        // Sorted (a BTreeSet's order): the slice table's key.
        let effective: Vec<String> = self
            .roles
            .effective(s.roles.iter().map(String::as_str))
            .into_iter()
            .map(str::to_owned)
            .collect();
        let slice = self.slice(&effective)?;
        let fingerprint = self.hash_pair(|mut h| {
            // Everything the principal entity holds; `authenticated_at` only reaches the
            // context, which memoized decisions never read.
            (&s.id, s.service, &s.tenant, &s.roles, &effective, &s.groups).hash(&mut h);
            (&s.scopes, &s.acr, &s.amr, &s.method).hash(&mut h);
            for (k, v) in &s.attributes {
                (k, v.to_string()).hash(&mut h);
            }
        });
        Ok(Prepared {
            subject: s,
            effective,
            entity: OnceLock::new(),
            slice,
            fingerprint,
        })
    }

    /// Decides one request.
    pub fn decide(
        &self,
        s: &Subject,
        action: Action,
        target: &Target,
        sit: &Situation<'_>,
    ) -> Decision {
        match self.prepare(s) {
            Ok(p) => self.decide_prepared(&p, action, target, sit),
            Err(e) => error_decision(&e),
        }
    }

    /// Decides one request for a prepared principal.
    pub fn decide_prepared(
        &self,
        p: &Prepared,
        action: Action,
        target: &Target,
        sit: &Situation<'_>,
    ) -> Decision {
        let decision = self.cedar_decision(p, action, target, sit);
        let Decision::Allow { policies } = decision else {
            return decision;
        };
        if sit.listing || self.conditions.is_empty() {
            return Decision::Allow { policies };
        }
        // A grant with argument conditions counts only when they hold for this call.
        let granted: Vec<String> = policies
            .into_iter()
            .filter(|id| {
                self.conditions.get(id).is_none_or(|when| {
                    crate::roles::conditions_hold(when, sit.arguments, &p.subject.attributes)
                })
            })
            .collect();
        if granted.is_empty() {
            Decision::Deny {
                policies: granted,
                cause: DenyCause::NoPermit,
            }
        } else {
            Decision::Allow { policies: granted }
        }
    }

    /// Cedar's decision, memoized when the principal's slice reads no context.
    fn cedar_decision(
        &self,
        p: &Prepared,
        action: Action,
        target: &Target,
        sit: &Situation<'_>,
    ) -> Decision {
        if p.slice.dynamic {
            return match self.evaluate(p, action, target, sit) {
                Ok(d) => d,
                Err(e) => error_decision(&e),
            };
        }
        let key = self.hash_pair(|mut h| (p.fingerprint, action, sit.listing, target).hash(&mut h));
        if let Some(d) = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return d.clone();
        }
        match self.evaluate(p, action, target, sit) {
            Ok(d) => {
                let mut memo = self
                    .decisions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if memo.len() >= MAX_DECISIONS {
                    memo.clear();
                }
                memo.insert(key, d.clone());
                d
            }
            // Errors are not remembered: the next request tries again.
            Err(e) => error_decision(&e),
        }
    }

    fn evaluate(
        &self,
        p: &Prepared,
        action: Action,
        target: &Target,
        sit: &Situation<'_>,
    ) -> Result<Decision, PolicyError> {
        let (resource, server) = target_entities(target)?;
        let args_uid = uid("Gatehouse::Arguments", "call");
        let tags = sit.arguments.into_iter().flatten().map(|(k, v)| {
            let s = match v {
                Value::String(s) => string(s),
                other => string(&other.to_string()),
            };
            (k.clone(), s)
        });
        let args = Entity::new_with_tags(args_uid.clone(), [], [], tags)
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        let mut ctx = vec![
            (
                "listing".to_owned(),
                RestrictedExpression::new_bool(sit.listing),
            ),
            (
                "now".into(),
                RestrictedExpression::new_long(i64::try_from(sit.now).unwrap_or(i64::MAX)),
            ),
            (
                "arguments".into(),
                RestrictedExpression::new_entity_uid(args_uid),
            ),
        ];
        if let Some(c) = sit.client {
            ctx.push(("client".into(), string(c)));
        }
        if let Some(ip) = sit.source_ip {
            ctx.push((
                "source_ip".into(),
                RestrictedExpression::new_ip(ip.to_string()),
            ));
        }
        if let Some(at) = p.subject.authenticated_at {
            let age = sit.now.saturating_sub(at);
            ctx.push((
                "auth_age".into(),
                RestrictedExpression::new_long(i64::try_from(age).unwrap_or(i64::MAX)),
            ));
        }
        let context = Context::from_pairs(ctx).map_err(|e| PolicyError::Request(e.to_string()))?;
        let resource_uid = resource.uid();
        let (principal_uid, principal) = p.entity()?;
        let entities = Entities::from_entities([principal.clone(), resource, server, args], None)
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        let request = Request::new(
            principal_uid.clone(),
            uid("Gatehouse::Action", action.as_str()),
            resource_uid,
            context,
            None,
        )
        .map_err(|e| PolicyError::Request(e.to_string()))?;
        let response = self
            .authorizer
            .is_authorized(&request, &p.slice.set, &entities);
        // Cedar skips a policy whose evaluation errors. For a permit that is a fail-closed
        // default already; for a forbid it would fail open, so it denies here.
        let failed_forbids: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| match e {
                cedar_policy::AuthorizationError::PolicyEvaluationError(pe) => {
                    pe.policy_id().to_string()
                }
            })
            .filter(|id| {
                self.policies
                    .policy(&PolicyId::new(id))
                    .is_some_and(|p| p.effect() == Effect::Forbid)
            })
            .collect();
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        reasons.sort();
        if !failed_forbids.is_empty() {
            return Ok(Decision::Deny {
                policies: failed_forbids,
                cause: DenyCause::Error,
            });
        }
        Ok(match response.decision() {
            CedarDecision::Allow => Decision::Allow { policies: reasons },
            CedarDecision::Deny if reasons.is_empty() => Decision::Deny {
                policies: reasons,
                cause: DenyCause::NoPermit,
            },
            CedarDecision::Deny => Decision::Deny {
                policies: reasons,
                cause: DenyCause::Forbidden,
            },
        })
    }

    /// Checks that the entities and context built for a request conform to the schema.
    /// Decisions skip this check for speed; tests run it.
    pub fn conforms(
        &self,
        s: &Subject,
        action: Action,
        target: &Target,
    ) -> Result<(), PolicyError> {
        let p = self.prepare(s)?;
        let (resource, server) = target_entities(target)?;
        let args = Entity::new_no_attrs(uid("Gatehouse::Arguments", "call"), HashSet::new());
        let resource_uid = resource.uid();
        let (principal_uid, principal) = p.entity()?.clone();
        Entities::from_entities([principal, resource, server, args], Some(&self.schema))
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        let context = Context::from_pairs([
            ("listing".to_owned(), RestrictedExpression::new_bool(false)),
            ("now".into(), RestrictedExpression::new_long(0)),
            (
                "arguments".into(),
                RestrictedExpression::new_entity_uid(uid("Gatehouse::Arguments", "call")),
            ),
            ("client".into(), string("c")),
            (
                "source_ip".into(),
                RestrictedExpression::new_ip("127.0.0.1"),
            ),
            ("auth_age".into(), RestrictedExpression::new_long(1)),
        ])
        .map_err(|e| PolicyError::Request(e.to_string()))?;
        Request::new(
            principal_uid,
            uid("Gatehouse::Action", action.as_str()),
            resource_uid,
            context,
            Some(&self.schema),
        )
        .map_err(|e| PolicyError::Request(e.to_string()))?;
        Ok(())
    }
}

fn error_decision(e: &PolicyError) -> Decision {
    Decision::Deny {
        policies: vec![format!("gatehouse.error: {e}")],
        cause: DenyCause::Error,
    }
}

/// The attributes tools and prompts share.
fn named(
    exposed: &str,
    original: &str,
    server: &str,
    classification: crate::Classification,
) -> Vec<(String, RestrictedExpression)> {
    vec![
        ("name".to_owned(), string(exposed)),
        ("original".into(), string(original)),
        ("server".into(), string(server)),
        ("classification".into(), string(classification.as_str())),
        (
            "level".into(),
            RestrictedExpression::new_long(classification.level()),
        ),
    ]
}

/// The target's entity and its server's.
fn target_entities(target: &Target) -> Result<(Entity, Entity), PolicyError> {
    let server = target.server();
    let server_uid = uid("Gatehouse::Server", server);
    let (uid_, attrs, tenancy) = match target {
        Target::Tool {
            server,
            original,
            exposed,
            classification,
            verb,
            hints,
            tenancy,
        } => (
            uid("Gatehouse::Tool", &format!("{server}.{original}")),
            [
                named(exposed, original, server, *classification),
                vec![
                    ("verb".into(), string(verb.as_str())),
                    (
                        "read_only".into(),
                        RestrictedExpression::new_bool(hints.read_only),
                    ),
                    (
                        "destructive".into(),
                        RestrictedExpression::new_bool(hints.destructive),
                    ),
                    (
                        "idempotent".into(),
                        RestrictedExpression::new_bool(hints.idempotent),
                    ),
                    (
                        "open_world".into(),
                        RestrictedExpression::new_bool(hints.open_world),
                    ),
                ],
            ]
            .concat(),
            tenancy,
        ),
        Target::Prompt {
            server,
            original,
            exposed,
            classification,
            tenancy,
        } => (
            uid("Gatehouse::Prompt", &format!("{server}.{original}")),
            named(exposed, original, server, *classification),
            tenancy,
        ),
        Target::Resource {
            server,
            uri,
            classification,
            tenancy,
        } => (
            uid("Gatehouse::Resource", uri),
            vec![
                ("uri".to_owned(), string(uri)),
                ("server".into(), string(server)),
                ("classification".into(), string(classification.as_str())),
                (
                    "level".into(),
                    RestrictedExpression::new_long(classification.level()),
                ),
            ],
            tenancy,
        ),
    };
    let mut attrs = attrs;
    tenancy_attrs(tenancy, &mut attrs);
    let mut server_attrs = Vec::new();
    tenancy_attrs(tenancy, &mut server_attrs);
    let resource = Entity::new_with_tags(uid_, attrs, [server_uid.clone()], [])
        .map_err(|e| PolicyError::Request(e.to_string()))?;
    let server = Entity::new_with_tags(server_uid, server_attrs, [], [])
        .map_err(|e| PolicyError::Request(e.to_string()))?;
    Ok((resource, server))
}

#[cfg(test)]
mod tests {
    use super::reads_context;

    #[test]
    fn context_reads_are_found_conservatively() {
        assert!(!reads_context("permit (principal, action, resource);"));
        assert!(!reads_context(
            "permit (principal, action, resource) when { context.listing || true };"
        ));
        assert!(reads_context(
            "when { context.listing || context.arguments.hasTag(\"a\") }"
        ));
        assert!(reads_context("when { context has client }"));
        assert!(reads_context("when { context[\"now\"] > 1 }"));
        assert!(reads_context("when { context.listingx }"));
        assert!(
            reads_context("when { resource.name == \"context\" }"),
            "a string counts too"
        );
        assert!(!reads_context(
            "when { resource.mycontext == 1 && principal.context_free }"
        ));
    }
}
