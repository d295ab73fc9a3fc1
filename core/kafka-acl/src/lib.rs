//! Kafka's ACL admin calls over librdkafka's C API, which rust-rdkafka does not wrap: creating
//! ACLs (`gridsync acls --apply`), and asking which operations the client's own principal may
//! perform on topics (each binary's check at start, so that a missing ACL is named at once rather
//! than retried for ever).
//!
//! Every call runs on a client of rust-rdkafka's (its `rd_kafka_t`, which outlives the call), on a
//! queue of its own, and frees what it made whatever the outcome.
#![allow(unsafe_code)]

use std::{
    collections::BTreeMap,
    ffi::{CStr, CString},
    os::raw::c_char,
    time::Duration,
};

use rdkafka::{admin::AdminClient, client::DefaultClientContext};
use rdkafka_sys::bindings as rd;

/// A resource an ACL is about (librdkafka's `BROKER` is Kafka's `CLUSTER`, named `kafka-cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternType {
    Literal,
    Prefixed,
}

/// Kafka's ACL operations, by the names `kafka-acls` and the broker use.
pub const OPERATIONS: [(&str, rd::rd_kafka_AclOperation_t); 10] = [
    ("ALL", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ALL),
    ("READ", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ),
    ("WRITE", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE),
    ("CREATE", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_CREATE),
    ("DELETE", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DELETE),
    ("ALTER", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ALTER),
    ("DESCRIBE", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE),
    ("DESCRIBE_CONFIGS", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS),
    ("ALTER_CONFIGS", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS),
    ("IDEMPOTENT_WRITE", rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE),
];

/// One ACL to create: `principal` (e.g. `User:billing`) allowed `operation` (a name of
/// [`OPERATIONS`]) on a resource, from any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBinding {
    pub resource: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    pub principal: String,
    pub operation: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("{0}")]
    Invalid(String),
    #[error("no answer from the cluster in {0:?}")]
    Timeout(Duration),
    #[error("the cluster refused the request: {0}")]
    Request(String),
    #[error("{binding}: {error}")]
    Refused { binding: String, error: String },
}

fn operation(name: &str) -> Result<rd::rd_kafka_AclOperation_t, AclError> {
    OPERATIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, op)| *op)
        .ok_or_else(|| AclError::Invalid(format!("no ACL operation {name}")))
}

fn operation_name(op: rd::rd_kafka_AclOperation_t) -> Option<&'static str> {
    OPERATIONS.iter().find(|(_, o)| *o == op).map(|(n, _)| *n)
}

fn c_string(s: &str) -> Result<CString, AclError> {
    CString::new(s).map_err(|_| AclError::Invalid(format!("{s:?} holds a NUL byte")))
}

/// A C string of librdkafka's, borrowed for the call.
fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka returns NUL-terminated strings that live as long as the object they
    // belong to, which the caller holds while reading.
    unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

/// An admin call's options, queue and result event, destroyed together.
struct Call {
    options: *mut rd::rd_kafka_AdminOptions_t,
    queue: *mut rd::rd_kafka_queue_t,
    event: *mut rd::rd_kafka_event_t,
}

impl Call {
    fn new(
        client: &AdminClient<DefaultClientContext>,
        op: rd::rd_kafka_admin_op_t,
        timeout: Duration,
    ) -> Result<Self, AclError> {
        let rk = client.inner().native_ptr();
        // SAFETY: `rk` is the live client handle of `client`; both objects are freed in `drop`.
        let (options, queue) = unsafe { (rd::rd_kafka_AdminOptions_new(rk, op), rd::rd_kafka_queue_new(rk)) };
        let call = Call { options, queue, event: std::ptr::null_mut() };
        if options.is_null() || queue.is_null() {
            return Err(AclError::Invalid("librdkafka made no admin options or queue".into()));
        }
        let mut errstr = [0 as c_char; 256];
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `options` is valid; `errstr` is a writable buffer of the size given.
        let set = unsafe {
            rd::rd_kafka_AdminOptions_set_request_timeout(options, millis, errstr.as_mut_ptr(), errstr.len())
        };
        if set != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(AclError::Invalid(text(errstr.as_ptr())));
        }
        Ok(call)
    }

    /// Waits for the call's result event; checks the request's own error.
    fn wait(&mut self, timeout: Duration) -> Result<*mut rd::rd_kafka_event_t, AclError> {
        let millis = i32::try_from((timeout + Duration::from_secs(5)).as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is valid; the event returned (if any) is owned here and freed in drop.
        self.event = unsafe { rd::rd_kafka_queue_poll(self.queue, millis) };
        if self.event.is_null() {
            return Err(AclError::Timeout(timeout));
        }
        // SAFETY: a valid event.
        let err = unsafe { rd::rd_kafka_event_error(self.event) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: a valid event; the string lives as long as it.
            return Err(AclError::Request(text(unsafe { rd::rd_kafka_event_error_string(self.event) })));
        }
        Ok(self.event)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // SAFETY: each pointer is either null or owned by this call alone.
        unsafe {
            if !self.event.is_null() {
                rd::rd_kafka_event_destroy(self.event);
            }
            if !self.queue.is_null() {
                rd::rd_kafka_queue_destroy(self.queue);
            }
            if !self.options.is_null() {
                rd::rd_kafka_AdminOptions_destroy(self.options);
            }
        }
    }
}

/// An error of the cluster's about one resource: Kafka's error name (`TOPIC_AUTHORIZATION_FAILED`)
/// and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    pub name: String,
    pub message: String,
}

impl ResourceError {
    /// The principal is not allowed to see or use the resource at all.
    pub fn is_authorization(&self) -> bool {
        self.name.ends_with("AUTHORIZATION_FAILED")
    }
}

impl std::fmt::Display for ResourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.name)
    }
}

/// An `rd_kafka_error_t` as a [`ResourceError`], or `None` for no error.
fn resource_error(error: *const rd::rd_kafka_error_t) -> Option<ResourceError> {
    if error.is_null() {
        return None;
    }
    // SAFETY: a valid error object, owned by the result it came from.
    let (code, name, message) =
        unsafe { (rd::rd_kafka_error_code(error), rd::rd_kafka_error_name(error), rd::rd_kafka_error_string(error)) };
    (code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
        .then(|| ResourceError { name: text(name), message: text(message) })
}

fn error_text(error: *const rd::rd_kafka_error_t) -> Option<String> {
    resource_error(error).map(|e| e.to_string())
}

/// Creates `bindings` (ALLOW, any host). Kafka keeps an ACL that exists already as it is, so
/// creating the same ones again changes nothing.
pub fn create_acls(
    client: &AdminClient<DefaultClientContext>,
    bindings: &[AclBinding],
    timeout: Duration,
) -> Result<(), AclError> {
    if bindings.is_empty() {
        return Ok(());
    }
    let mut made: Vec<*mut rd::rd_kafka_AclBinding_t> = Vec::with_capacity(bindings.len());
    // Frees the bindings made so far, whatever happens below.
    struct Made<'a>(&'a mut Vec<*mut rd::rd_kafka_AclBinding_t>);
    impl Drop for Made<'_> {
        fn drop(&mut self) {
            // SAFETY: every element was made by rd_kafka_AclBinding_new and is freed once.
            unsafe { rd::rd_kafka_AclBinding_destroy_array(self.0.as_mut_ptr(), self.0.len()) };
        }
    }
    let made = Made(&mut made);
    let any_host = c_string("*")?;
    for b in bindings {
        let (name, principal) = (c_string(&b.name)?, c_string(&b.principal)?);
        let restype = match b.resource {
            ResourceType::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            ResourceType::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
            ResourceType::Cluster => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER,
        };
        let pattern = match b.pattern {
            PatternType::Literal => rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            PatternType::Prefixed => rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
        };
        let mut errstr = [0 as c_char; 256];
        // SAFETY: the strings are NUL-terminated and outlive the call (librdkafka copies them);
        // `errstr` is writable for its length.
        let binding = unsafe {
            rd::rd_kafka_AclBinding_new(
                restype,
                name.as_ptr(),
                pattern,
                principal.as_ptr(),
                any_host.as_ptr(),
                operation(b.operation)?,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if binding.is_null() {
            return Err(AclError::Invalid(format!("{b:?}: {}", text(errstr.as_ptr()))));
        }
        made.0.push(binding);
    }
    let mut call = Call::new(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS, timeout)?;
    // SAFETY: the client, bindings, options and queue are valid for the call; librdkafka copies
    // the bindings.
    unsafe {
        rd::rd_kafka_CreateAcls(
            client.inner().native_ptr(),
            made.0.as_mut_ptr(),
            made.0.len(),
            call.options,
            call.queue,
        )
    };
    let event = call.wait(timeout)?;
    // SAFETY: a CreateAcls result event; its results live as long as the event.
    let result = unsafe { rd::rd_kafka_event_CreateAcls_result(event) };
    if result.is_null() {
        return Err(AclError::Request("not a CreateAcls result".into()));
    }
    let mut count = 0usize;
    // SAFETY: `result` is valid; the array has `count` elements, in the order of the request.
    let results = unsafe { rd::rd_kafka_CreateAcls_result_acls(result, &mut count) };
    for (i, binding) in bindings.iter().enumerate().take(count) {
        // SAFETY: `i < count`.
        let error = unsafe { rd::rd_kafka_acl_result_error(*results.add(i)) };
        if let Some(error) = error_text(error) {
            return Err(AclError::Refused { binding: format!("{binding:?}"), error });
        }
    }
    Ok(())
}

/// What the client's principal may do on a topic: the operations (`None`: the broker does not
/// say), or why the topic could not be described.
pub type TopicAccess = Result<Option<Vec<&'static str>>, ResourceError>;

/// What the client's own principal may do on each of `topics`: the operations Kafka says it is
/// authorized for, or the error the topic's description came with (e.g. not authorized to
/// describe it at all). `None` for a topic when the broker does not say (an old broker).
pub fn topic_operations(
    client: &AdminClient<DefaultClientContext>,
    topics: &[String],
    timeout: Duration,
) -> Result<BTreeMap<String, TopicAccess>, AclError> {
    let names: Vec<CString> = topics.iter().map(|t| c_string(t)).collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    // SAFETY: `pointers` holds `len` valid strings, copied by librdkafka.
    let collection = unsafe { rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len()) };
    if collection.is_null() {
        return Err(AclError::Invalid("librdkafka made no topic collection".into()));
    }
    struct Collection(*mut rd::rd_kafka_TopicCollection_t);
    impl Drop for Collection {
        fn drop(&mut self) {
            // SAFETY: made above, freed once.
            unsafe { rd::rd_kafka_TopicCollection_destroy(self.0) };
        }
    }
    let collection = Collection(collection);
    let mut call = Call::new(client, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, timeout)?;
    // SAFETY: valid options.
    let set = unsafe { rd::rd_kafka_AdminOptions_set_include_authorized_operations(call.options, 1) };
    if !set.is_null() {
        let message = error_text(set).unwrap_or_default();
        // SAFETY: the error object is ours to free.
        unsafe { rd::rd_kafka_error_destroy(set) };
        return Err(AclError::Invalid(message));
    }
    // SAFETY: valid client, collection, options and queue for the call.
    unsafe { rd::rd_kafka_DescribeTopics(client.inner().native_ptr(), collection.0, call.options, call.queue) };
    let event = call.wait(timeout)?;
    // SAFETY: a DescribeTopics result event; its descriptions live as long as the event.
    let result = unsafe { rd::rd_kafka_event_DescribeTopics_result(event) };
    if result.is_null() {
        return Err(AclError::Request("not a DescribeTopics result".into()));
    }
    let mut count = 0usize;
    // SAFETY: `result` is valid; `count` descriptions follow.
    let descriptions = unsafe { rd::rd_kafka_DescribeTopics_result_topics(result, &mut count) };
    let mut out = BTreeMap::new();
    for i in 0..count {
        // SAFETY: `i < count`; each description is valid while the event lives.
        let description = unsafe { *descriptions.add(i) };
        // SAFETY: as above.
        let name = text(unsafe { rd::rd_kafka_TopicDescription_name(description) });
        // SAFETY: as above.
        if let Some(error) = resource_error(unsafe { rd::rd_kafka_TopicDescription_error(description) }) {
            out.insert(name, Err(error));
            continue;
        }
        let mut ops = 0usize;
        // SAFETY: as above; `ops` operations follow (none: the broker did not say).
        let allowed = unsafe { rd::rd_kafka_TopicDescription_authorized_operations(description, &mut ops) };
        let allowed = (!allowed.is_null() && ops > 0).then(|| {
            // SAFETY: `allowed` points to `ops` operations.
            (0..ops).filter_map(|j| operation_name(unsafe { *allowed.add(j) })).collect()
        });
        out.insert(name, Ok(allowed));
    }
    Ok(out)
}
