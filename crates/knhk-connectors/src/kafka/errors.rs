//! Which Kafka failures another attempt may cure (a broker down, a leader being elected, a
//! timeout) and which it will not (an unknown topic, a record too large, a refusal).

use rskafka::BackoffError;
use rskafka::ConnectionError;
use rskafka::client::error::{Error, ProtocolError, RequestError};

use crate::connector::CallError;

/// An error of the Kafka client, as the pool reports a connection it could not open.
#[derive(Debug)]
pub struct KafkaError(Error);

impl From<Error> for KafkaError {
    fn from(e: Error) -> KafkaError {
        KafkaError(e)
    }
}

impl std::fmt::Display for KafkaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

impl std::error::Error for KafkaError {}

/// Turns a client error into the call's error, retryable or not, naming the instance.
pub(super) fn classify(instance: &str, error: &KafkaError) -> CallError {
    let message = format!("kafka {instance}: {}", describe(&error.0));
    if retryable(&error.0) {
        CallError::Retryable(message)
    } else {
        CallError::Permanent(message)
    }
}

fn retryable(error: &Error) -> bool {
    match error {
        Error::Connection(e) => connection_retryable(e),
        Error::Request(e) => request_retryable(e),
        Error::ServerError { protocol_error, .. } => code_retryable(*protocol_error),
        // rskafka retries only what it takes for transient (a broken connection, a leader
        // election) and gives up at its deadline: the next attempt may find it over.
        Error::RetryFailed(_) | Error::Timeout => true,
        _ => false,
    }
}

fn connection_retryable(error: &ConnectionError) -> bool {
    match error {
        ConnectionError::Transport { .. }
        | ConnectionError::Metadata(_)
        | ConnectionError::RetryFailed(_) => true,
        // The broker speaks no version of an API the client needs, or refused the login.
        _ => false,
    }
}

fn request_retryable(error: &RequestError) -> bool {
    matches!(
        error,
        RequestError::IO(_) | RequestError::Poisoned(_) | RequestError::ReadFramedMessageError(_)
    )
}

/// The broker's error codes that Kafka's own clients retry (their `RetriableException`s), less
/// `UNKNOWN_TOPIC_OR_PARTITION`: a task naming a topic that does not exist is a mistake of the
/// workflow, which retries would only delay.
fn code_retryable(code: ProtocolError) -> bool {
    use ProtocolError as E;
    matches!(
        code,
        E::CorruptMessage
            | E::LeaderNotAvailable
            | E::NotLeaderOrFollower
            | E::RequestTimedOut
            | E::BrokerNotAvailable
            | E::ReplicaNotAvailable
            | E::NetworkException
            | E::CoordinatorLoadInProgress
            | E::CoordinatorNotAvailable
            | E::NotCoordinator
            | E::NotEnoughReplicas
            | E::NotEnoughReplicasAfterAppend
            | E::KafkaStorageError
            | E::FencedLeaderEpoch
            | E::UnknownLeaderEpoch
            | E::OffsetNotAvailable
            | E::PreferredLeaderNotAvailable
            | E::EligibleLeadersNotAvailable
            | E::ThrottlingQuotaExceeded
            | E::ConcurrentTransactions
    )
}

/// Says what went wrong in a sentence, without rskafka's debug dumps of requests.
fn describe(error: &Error) -> String {
    match error {
        Error::ServerError {
            protocol_error,
            error_message,
            request,
            ..
        } => {
            let about = match request {
                rskafka::client::error::RequestContext::Topic(t) => format!("topic {t}"),
                rskafka::client::error::RequestContext::Partition(t, p) => {
                    format!("topic {t} partition {p}")
                }
                _ => "the request".to_owned(),
            };
            let code = code_name(*protocol_error);
            match error_message {
                Some(m) if !m.is_empty() => format!("{about}: the broker answered {code}: {m}"),
                _ => format!("{about}: the broker answered {code}"),
            }
        }
        Error::RetryFailed(e) | Error::Connection(ConnectionError::RetryFailed(e)) => gave_up(e),
        other => chain(other),
    }
}

/// Says what rskafka's own retries ended on.
fn gave_up(error: &BackoffError) -> String {
    let BackoffError::DeadlineExceded { deadline, source } = error;
    let last = match source.downcast_ref::<Error>() {
        Some(e) => describe(e),
        None => chain(source.as_ref()),
    };
    format!("still failing after retries for {deadline:?}: {last}")
}

/// Names a broker error code as Kafka's documentation does (`UNKNOWN_TOPIC_OR_PARTITION`).
fn code_name(code: ProtocolError) -> String {
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: ProtocolError) -> Error {
        Error::ServerError {
            protocol_error: code,
            error_message: None,
            request: rskafka::client::error::RequestContext::Partition("orders".to_owned(), 2),
            response: None,
            is_virtual: false,
        }
    }

    #[test]
    fn leader_elections_and_timeouts_are_retried() {
        for code in [
            ProtocolError::LeaderNotAvailable,
            ProtocolError::NotLeaderOrFollower,
            ProtocolError::RequestTimedOut,
            ProtocolError::NotEnoughReplicas,
        ] {
            let e = classify("events", &server(code).into());
            assert!(e.is_retryable(), "{e}");
        }
        assert!(classify("events", &Error::Timeout.into()).is_retryable());
    }

    #[test]
    fn unknown_topics_and_large_records_are_permanent() {
        let e = classify(
            "events",
            &server(ProtocolError::UnknownTopicOrPartition).into(),
        );
        assert_eq!(
            e,
            CallError::Permanent(
                "kafka events: topic orders partition 2: the broker answered \
                 UNKNOWN_TOPIC_OR_PARTITION"
                    .to_owned()
            )
        );
        for code in [
            ProtocolError::MessageTooLarge,
            ProtocolError::RecordListTooLarge,
            ProtocolError::TopicAuthorizationFailed,
            ProtocolError::InvalidTopicException,
        ] {
            let e = classify("events", &server(code).into());
            assert!(!e.is_retryable(), "{e}");
        }
    }
}
