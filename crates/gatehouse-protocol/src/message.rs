//! JSON-RPC 2.0 messages: requests, notifications and responses, with params and results
//! kept as `serde_json::Value` so fields Gatehouse does not know survive a round trip.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::error::{RpcError, code};

/// Method names Gatehouse routes on.
pub mod method {
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const PING: &str = "ping";
    pub const DISCOVER: &str = "server/discover";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const COMPLETE: &str = "completion/complete";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const PROGRESS: &str = "notifications/progress";
    pub const MESSAGE: &str = "notifications/message";
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
}

/// A JSON-RPC id: a string or a number (null only in an error answering an unreadable request).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    Num(Number),
    Str(String),
    Null,
}

impl Id {
    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => Some(Id::Num(n.clone())),
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Null => Some(Id::Null),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::Number(n.clone()),
            Id::Str(s) => Value::String(s.clone()),
            Id::Null => Value::Null,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Num(n) => n.as_u64(),
            _ => None,
        }
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Num(n.into())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Num(n) => n.serialize(s),
            Id::Str(v) => s.serialize_str(v),
            Id::Null => s.serialize_unit(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Id,
    pub method: String,
    pub params: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Id,
    pub outcome: Result<Value, RpcError>,
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Notification(Notification),
    Response(Response),
}

impl Request {
    pub fn new(id: impl Into<Id>, method: &str, params: Option<Value>) -> Self {
        Self {
            id: id.into(),
            method: method.to_owned(),
            params,
        }
    }

    /// `params[key]` as a string, if present.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(key)?.as_str()
    }

    /// `params._meta`, if it is an object.
    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.params.as_ref()?.get("_meta")?.as_object()
    }

    /// Mutable `params._meta`, if present.
    pub fn meta_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.params.as_mut()?.get_mut("_meta")?.as_object_mut()
    }
}

impl Notification {
    pub fn new(method: &str, params: Option<Value>) -> Self {
        Self {
            method: method.to_owned(),
            params,
        }
    }
}

impl Response {
    pub fn ok(id: Id, result: Value) -> Self {
        Self {
            id,
            outcome: Ok(result),
        }
    }

    pub fn err(id: Id, error: RpcError) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}
impl From<Notification> for Message {
    fn from(n: Notification) -> Self {
        Message::Notification(n)
    }
}
impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

impl Message {
    /// Reads one message from a decoded JSON value; the error says what was wrong,
    /// with the id when one could be read (so the error response can carry it).
    // The error is the answer the client gets, built once per bad message: its size is fine.
    #[allow(clippy::result_large_err)]
    pub fn from_value(v: Value) -> Result<Self, (Id, RpcError)> {
        let Value::Object(mut obj) = v else {
            return Err((Id::Null, invalid("a JSON-RPC message must be an object")));
        };
        let id = match obj.remove("id") {
            None => None,
            Some(raw) => match Id::from_value(&raw) {
                Some(id) => Some(id),
                None => return Err((Id::Null, invalid("id must be a string or a number"))),
            },
        };
        let err_id = id.clone().unwrap_or(Id::Null);
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err((err_id, invalid("jsonrpc must be \"2.0\"")));
        }
        let params = obj.remove("params");
        if let Some(p) = &params
            && !p.is_object()
            && !p.is_array()
        {
            return Err((err_id, invalid("params must be an object or an array")));
        }
        match obj.remove("method") {
            Some(Value::String(method)) => match id {
                Some(Id::Null) => Err((Id::Null, invalid("a request id must not be null"))),
                Some(id) => Ok(Message::Request(Request { id, method, params })),
                None => Ok(Message::Notification(Notification { method, params })),
            },
            Some(_) => Err((err_id, invalid("method must be a string"))),
            None => {
                let Some(id) = id else {
                    return Err((Id::Null, invalid("a message needs a method or an id")));
                };
                match (obj.remove("result"), obj.remove("error")) {
                    (Some(result), None) => Ok(Message::Response(Response::ok(id, result))),
                    (None, Some(error)) => match serde_json::from_value::<RpcError>(error) {
                        Ok(e) => Ok(Message::Response(Response::err(id, e))),
                        Err(_) => Err((id, invalid("error must be {code, message, data?}"))),
                    },
                    _ => Err((
                        id,
                        invalid("a response needs exactly one of result and error"),
                    )),
                }
            }
        }
    }

    /// Serializes to compact JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing values we built cannot fail: keys are strings, numbers finite.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            Message::Response(_) => None,
        }
    }
}

fn invalid(msg: &str) -> RpcError {
    RpcError::new(code::INVALID_REQUEST, msg)
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Message::Request(r) => {
                m.serialize_entry("id", &r.id)?;
                m.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    m.serialize_entry("params", p)?;
                }
            }
            Message::Notification(n) => {
                m.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    m.serialize_entry("params", p)?;
                }
            }
            Message::Response(r) => {
                m.serialize_entry("id", &r.id)?;
                match &r.outcome {
                    Ok(v) => m.serialize_entry("result", v)?,
                    Err(e) => m.serialize_entry("error", e)?,
                }
            }
        }
        m.end()
    }
}
