//! gRPC over the service layer (tonic): `knhk.v1.WorkflowService` from
//! `proto/knhk/v1/workflow.proto`, each call a call of the same [`Service`] function REST
//! makes, its messages converted from and to the service layer's types, and every
//! [`ApiError`] answered with the gRPC status its [`Code`] maps to (the one mapping, in
//! `error.rs`). Served beside the standard health service and server reflection.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use knhk_workflow_engine::{SourceFormat, WorkItemStatus};
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use crate::error::{ApiError, Code};
use crate::service::{Made, Service, Watched};
use crate::types;

/// The code generated from `proto/knhk/v1/workflow.proto`: messages, server and client.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
pub mod pb {
    tonic::include_proto!("knhk.v1");

    /// The encoded descriptors of the API's files (and the files they import), which server
    /// reflection serves.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/knhk_v1_descriptor.bin"));
}

use pb::workflow_service_server::{WorkflowService, WorkflowServiceServer};

/// The metadata key that carries the API's own error code (`idempotency_key_reused`...) next
/// to the gRPC status, which several codes share.
pub const ERROR_CODE_KEY: &str = "knhk-error-code";
/// The metadata key that carries the field at fault, when the error names one.
pub const ERROR_FIELD_KEY: &str = "knhk-error-field";

/// Returns the gRPC status of an API error: its code's gRPC code (the one mapping), its
/// message, and the API's code and field as metadata.
pub fn status(e: &ApiError) -> Status {
    let mut status = Status::new(tonic::Code::from_i32(e.code.grpc_code()), e.message.clone());
    if let Ok(v) = e.code.as_str().parse() {
        status.metadata_mut().insert(ERROR_CODE_KEY, v);
    }
    if let Some(field) = e.details.get("field").and_then(Value::as_str)
        && let Ok(v) = field.parse()
    {
        status.metadata_mut().insert(ERROR_FIELD_KEY, v);
    }
    status
}

/// The gRPC front over one service.
#[derive(Debug, Clone)]
pub struct Grpc {
    service: Arc<Service>,
}

impl Grpc {
    pub fn new(service: Arc<Service>) -> Grpc {
        Grpc { service }
    }

    /// The tonic service, with the message size bound of the service's limits (a larger
    /// message is answered RESOURCE_EXHAUSTED, the status `payload_too_large` maps to).
    pub fn server(self) -> WorkflowServiceServer<Grpc> {
        let max = self.service.limits().max_body_bytes;
        WorkflowServiceServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX)
    }

    /// Runs one call in a task of its own within the request timeout. As in REST, neither
    /// the timeout nor a client that goes away cancels it: an engine call is never cut
    /// between its commit and the effects it performs after it.
    async fn call<T, F, Fut>(&self, f: F) -> Result<Response<T>, Status>
    where
        F: FnOnce(Arc<Service>) -> Fut,
        Fut: Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Send + 'static,
    {
        let limit = self.service.limits().request_timeout;
        let task = tokio::spawn(f(Arc::clone(&self.service)));
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(Ok(answer))) => Ok(Response::new(answer)),
            Ok(Ok(Err(e))) => Err(status(&e)),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a gRPC call's task failed");
                Err(status(&ApiError::new(
                    Code::Internal,
                    "the request's task failed",
                )))
            }
            Err(_) => Err(status(&ApiError::new(
                Code::DeadlineExceeded,
                format!("the request took longer than {} ms", limit.as_millis()),
            ))),
        }
    }

    /// Reads a Struct as a JSON object within the depth bound; `field` names it in errors.
    fn object(
        &self,
        field: &str,
        s: Option<prost_types::Struct>,
    ) -> Result<Map<String, Value>, Status> {
        let max = self.service.limits().max_json_depth;
        s.map(|s| struct_to_json(field, s, max, 1))
            .transpose()
            .map(Option::unwrap_or_default)
            .map_err(|e| status(&e))
    }
}

/// Serves gRPC on a listener until `shutdown` resolves: the workflow service, the standard
/// health service (`grpc.health.v1.Health`; SERVING for the whole server and for
/// `knhk.v1.WorkflowService`, NOT_SERVING once stopping) and server reflection (v1 and
/// v1alpha).
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<WorkflowServiceServer<Grpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ApiError::new(Code::Internal, format!("gRPC reflection: {e}")))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ApiError::new(Code::Internal, format!("gRPC reflection: {e}")))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let stopping = async move {
        shutdown.await;
        reporter
            .set_not_serving::<WorkflowServiceServer<Grpc>>()
            .await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    let max = service.limits().max_body_bytes;
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(move |res| {
            too_large_in_our_terms(res, max)
        }))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(Grpc::new(service).server())
        .serve_with_incoming_shutdown(incoming, stopping)
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("the gRPC server failed: {e}")))
}

/// tonic refuses a message over the decoding bound itself, with OUT_OF_RANGE, before the
/// service sees it; this answers it as every other entry point does: `payload_too_large`
/// (RESOURCE_EXHAUSTED through the one mapping), naming the limit.
fn too_large_in_our_terms(
    res: tonic::codegen::http::Response<tonic::body::Body>,
    max: usize,
) -> tonic::codegen::http::Response<tonic::body::Body> {
    let headers = res.headers();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if !(out_of_range && too_large) {
        return res;
    }
    let e = ApiError::new(
        Code::PayloadTooLarge,
        format!("the message is larger than the {max} bytes this server takes"),
    )
    .with("limit", max);
    status(&e).into_http()
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchCaseResponse, Status>> + Send>>;

fn text(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn size(n: u32) -> Option<usize> {
    (n != 0).then_some(n as usize)
}

#[tonic::async_trait]
impl WorkflowService for Grpc {
    async fn register_workflow(
        &self,
        request: Request<pb::RegisterWorkflowRequest>,
    ) -> Result<Response<pb::RegisterWorkflowResponse>, Status> {
        let r = request.into_inner();
        let format = match pb::SourceFormat::try_from(r.format) {
            Ok(pb::SourceFormat::Turtle) => SourceFormat::Turtle,
            Ok(pb::SourceFormat::YawlXml) => SourceFormat::YawlXml,
            _ => {
                return Err(status(&ApiError::invalid(
                    "format",
                    "format: give SOURCE_FORMAT_TURTLE or SOURCE_FORMAT_YAWL_XML",
                )));
            }
        };
        self.call(move |s| async move {
            let r = s.register_workflow(format, &r.source).await?;
            Ok(pb::RegisterWorkflowResponse {
                workflow: Some(workflow(r.workflow)),
                already_registered: r.already_registered,
            })
        })
        .await
    }

    async fn list_workflows(
        &self,
        request: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move {
            let page = s
                .list_workflows(
                    text(r.page_token).as_deref(),
                    r.after.as_deref(),
                    size(r.page_size),
                )
                .await?;
            Ok(pb::ListWorkflowsResponse {
                items: page.items.into_iter().map(workflow).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::Workflow>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.get_workflow(&id).await.map(workflow) })
            .await
    }

    async fn create_case(
        &self,
        request: Request<pb::CreateCaseRequest>,
    ) -> Result<Response<pb::CreateCaseResponse>, Status> {
        let r = request.into_inner();
        let data = self.object("data", r.data)?;
        let create = types::CreateCase {
            workflow_id: r.workflow_id,
            data,
            start: r.start,
        };
        let key = r.idempotency_key;
        self.call(move |s| async move {
            let (c, made) = s.create_case(create, key.as_deref()).await?;
            Ok(pb::CreateCaseResponse {
                case: Some(case(c)),
                replayed: made == Made::Replayed,
            })
        })
        .await
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let r = request.into_inner();
        let status_filter = if r.status.is_empty() {
            Vec::new()
        } else {
            crate::rest::statuses(&r.status.join(",")).map_err(|e| status(&e))?
        };
        let filter = types::CaseFilter {
            workflow: r.workflow,
            status: status_filter,
            page_token: text(r.page_token),
            after: r.after,
            page_size: size(r.page_size),
        };
        self.call(move |s| async move {
            let page = s.list_cases(filter).await?;
            Ok(pb::ListCasesResponse {
                items: page.items.into_iter().map(case).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_case(
        &self,
        request: Request<pb::CaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.get_case(&id).await.map(case) })
            .await
    }

    async fn execute_case(
        &self,
        request: Request<pb::CaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.execute(&id).await.map(case) })
            .await
    }

    async fn cancel_case(
        &self,
        request: Request<pb::CancelCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move { s.cancel(&r.id, r.reason.as_deref()).await.map(case) })
            .await
    }

    async fn suspend_case(
        &self,
        request: Request<pb::CaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.suspend(&id).await.map(case) })
            .await
    }

    async fn resume_case(
        &self,
        request: Request<pb::CaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.resume(&id).await.map(case) })
            .await
    }

    async fn trigger_case(
        &self,
        request: Request<pb::TriggerCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        let data = self.object("data", r.data)?;
        self.call(move |s| async move { s.trigger(&r.id, &r.event, data).await.map(case) })
            .await
    }

    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::HistoryPage>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move {
            let page = s
                .history(&r.id, r.after, text(r.page_token).as_deref(), size(r.limit))
                .await?;
            Ok(pb::HistoryPage {
                events: page.events.into_iter().map(event).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
            })
        })
        .await
    }

    type WatchCaseStream = WatchStream;

    async fn watch_case(
        &self,
        request: Request<pb::WatchCaseRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let r = request.into_inner();
        let rx = self
            .service
            .watch(&r.id, r.after)
            .await
            .map_err(|e| status(&e))?;
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            let message = match item {
                Ok(Watched::Event(e)) => Ok(pb::WatchCaseResponse {
                    message: Some(pb::watch_case_response::Message::Event(event(e))),
                }),
                Ok(Watched::End { status, stopping }) => Ok(pb::WatchCaseResponse {
                    message: Some(pb::watch_case_response::Message::End(pb::WatchEnd {
                        status,
                        stopping,
                    })),
                }),
                Err(e) => Err(status(&e)),
            };
            Some((message, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_work_items(
        &self,
        request: Request<pb::ListWorkItemsRequest>,
    ) -> Result<Response<pb::ListWorkItemsResponse>, Status> {
        let r = request.into_inner();
        let case = match r.case_id {
            Some(c) => Some(c.parse().map_err(|_| {
                status(&ApiError::invalid(
                    "case_id",
                    format!("case_id: {c:?} is not a UUID"),
                ))
            })?),
            None => None,
        };
        let item_status = match r.status {
            Some(t) => Some(t.parse::<WorkItemStatus>().map_err(|_| {
                status(&ApiError::invalid(
                    "status",
                    format!(
                        "status: {t:?} is not a work item status (offered, allocated, started)"
                    ),
                ))
            })?),
            None => None,
        };
        let filter = types::WorkItemFilter {
            role: r.role,
            user: r.user,
            case,
            status: item_status,
            page_token: text(r.page_token),
            after: r.after,
            after_offered_at: r.after_offered_at,
            page_size: size(r.page_size),
        };
        self.call(move |s| async move {
            let page = s.list_work_items(filter).await?;
            Ok(pb::ListWorkItemsResponse {
                items: page.items.into_iter().map(work_item).collect(),
                next_page_token: page.next_page_token.unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_work_item(
        &self,
        request: Request<pb::WorkItemRequest>,
    ) -> Result<Response<pb::WorkItem>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.get_work_item(&id).await.map(work_item) })
            .await
    }

    async fn claim_work_item(
        &self,
        request: Request<pb::WorkItemUserRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move { s.claim(&r.id, &r.user).await.map(case) })
            .await
    }

    async fn start_work_item(
        &self,
        request: Request<pb::WorkItemUserRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move { s.start_work_item(&r.id, &r.user).await.map(case) })
            .await
    }

    async fn complete_work_item(
        &self,
        request: Request<pb::CompleteWorkItemRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        let output = self.object("output", r.output)?;
        self.call(
            move |s| async move { s.complete_work_item(&r.id, &r.user, output).await.map(case) },
        )
        .await
    }

    async fn fail_work_item(
        &self,
        request: Request<pb::FailWorkItemRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move {
            s.fail_work_item(&r.id, &r.user, r.reason.as_deref())
                .await
                .map(case)
        })
        .await
    }

    async fn release_work_item(
        &self,
        request: Request<pb::WorkItemUserRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move { s.release_work_item(&r.id, &r.user).await.map(case) })
            .await
    }

    async fn delegate_work_item(
        &self,
        request: Request<pb::DelegateWorkItemRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(
            move |s| async move { s.delegate_work_item(&r.id, &r.user, &r.to).await.map(case) },
        )
        .await
    }

    async fn get_workflow_spec(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::WorkflowSpec>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move {
            let spec = match s.workflow_spec(&id).await? {
                Value::Object(m) => json_to_struct(m),
                _ => {
                    return Err(ApiError::new(
                        Code::Internal,
                        "the specification did not encode as an object",
                    ));
                }
            };
            Ok(pb::WorkflowSpec { spec: Some(spec) })
        })
        .await
    }

    async fn get_case_waits(
        &self,
        request: Request<pb::CaseRequest>,
    ) -> Result<Response<pb::CaseWaits>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move {
            let waits = s.waits(&id).await?;
            Ok(pb::CaseWaits {
                waits: waits.waits.into_iter().map(wait).collect(),
            })
        })
        .await
    }

    async fn retry_case(
        &self,
        request: Request<pb::RetryCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        let retry = types::RetryCase {
            task: r.task,
            net_instance: r.net_instance,
        };
        self.call(move |s| async move { s.retry(&r.id, retry).await.map(case) })
            .await
    }

    async fn set_case_data(
        &self,
        request: Request<pb::SetCaseDataRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        let data = self.object("data", r.data)?;
        self.call(move |s| async move { s.set_data(&r.id, data).await.map(case) })
            .await
    }

    async fn add_instance(
        &self,
        request: Request<pb::AddInstanceRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        let max = self.service.limits().max_json_depth;
        let item = match r.item {
            Some(v) => value_to_json("item", v, max, 1).map_err(|e| status(&e))?,
            None => Value::Null,
        };
        let add = types::AddInstance {
            task: r.task,
            net_instance: r.net_instance,
            item,
        };
        self.call(move |s| async move { s.add_instance(&r.id, add).await.map(case) })
            .await
    }

    async fn complete_task(
        &self,
        request: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        let complete = types::CompleteTask {
            task: r.task,
            net_instance: r.net_instance,
        };
        self.call(move |s| async move { s.complete_task(&r.id, complete).await.map(case) })
            .await
    }

    async fn offer_work_item(
        &self,
        request: Request<pb::OfferWorkItemRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(
            move |s| async move { s.offer_work_item(&r.id, &r.user, r.roles).await.map(case) },
        )
        .await
    }

    async fn allocate_work_item(
        &self,
        request: Request<pb::AllocateWorkItemRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let r = request.into_inner();
        self.call(
            move |s| async move { s.allocate_work_item(&r.id, &r.user, &r.to).await.map(case) },
        )
        .await
    }

    async fn lookup_case(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::Found>, Status> {
        let reference = request.into_inner().reference;
        self.call(move |s| async move { s.lookup_case(&reference).await.map(found) })
            .await
    }

    async fn lookup_work_item(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::Found>, Status> {
        let reference = request.into_inner().reference;
        self.call(move |s| async move { s.lookup_work_item(&reference).await.map(found) })
            .await
    }

    async fn lookup_workflow(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::Found>, Status> {
        let reference = request.into_inner().reference;
        self.call(move |s| async move { s.lookup_workflow(&reference).await.map(found) })
            .await
    }

    async fn release_case(
        &self,
        request: Request<pb::CaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        let id = request.into_inner().id;
        self.call(move |s| async move { s.release_case(&id).await.map(case) })
            .await
    }

    async fn list_quarantine(
        &self,
        _request: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::Quarantine>, Status> {
        self.call(move |s| async move {
            let q = s.quarantine().await?;
            Ok(pb::Quarantine {
                items: q
                    .items
                    .into_iter()
                    .map(|c| pb::QuarantinedCase {
                        case_id: c.case_id,
                        reason: c.reason,
                        quarantined_at: c.quarantined_at,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn list_connectors(
        &self,
        _request: Request<pb::ListConnectorsRequest>,
    ) -> Result<Response<pb::Connectors>, Status> {
        self.call(move |s| async move {
            let found = s.connectors().await?;
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            Ok(pb::Connectors {
                items: found
                    .items
                    .into_iter()
                    .map(|c| pb::Connector {
                        name: c.name,
                        kind: c.kind,
                        pool: c.pool.map(|p| pb::ConnectorPool {
                            max_size: count(p.max_size),
                            active: count(p.active),
                            idle: count(p.idle),
                            waiters: count(p.waiters),
                        }),
                        ok: c.ok,
                        latency_ms: c.latency_ms,
                        detail: c.detail,
                        error: c.error,
                    })
                    .collect(),
                subscriptions: found
                    .subscriptions
                    .into_iter()
                    .map(|s| pb::Subscription {
                        name: s.name,
                        ok: s.ok,
                        latency_ms: s.latency_ms,
                        pending: s.pending,
                        unacknowledged: s.unacknowledged,
                        error: s.error,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn get_receipt(
        &self,
        request: Request<pb::GetReceiptRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move { receipt(s.receipt(&r.case_id, r.seq).await?) })
            .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let r = request.into_inner();
        self.call(move |s| async move { consistency(s.consistency(r.from, r.to).await?) })
            .await
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        self.call(move |s| async move { checkpoint(s.checkpoint().await?) })
            .await
    }

    async fn get_public_key(
        &self,
        _request: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::PublicKey>, Status> {
        self.call(move |s| async move {
            Ok(pb::PublicKey {
                key: s.public_key()?,
            })
        })
        .await
    }
}

/// A receipt with its base64 fields as bytes.
fn receipt(r: crate::lockchain::Receipt) -> Result<pb::Receipt, ApiError> {
    Ok(pb::Receipt {
        event: r.event_bytes()?,
        inclusion: r.inclusion_bytes()?,
        format: r.format,
        case_id: r.case,
        seq: r.seq,
        leaf_index: r.leaf_index,
        tree_size: r.tree_size,
        checkpoint: r.checkpoint,
    })
}

/// A consistency proof with its hashes as bytes.
fn consistency(p: crate::lockchain::ConsistencyProof) -> Result<pb::ConsistencyProof, ApiError> {
    Ok(pb::ConsistencyProof {
        proof: p.proof_bytes()?,
        format: p.format,
        old_size: p.old_size,
        new_size: p.new_size,
        old_checkpoint: p.old_checkpoint,
        new_checkpoint: p.new_checkpoint,
    })
}

/// A checkpoint with its root as bytes.
fn checkpoint(c: crate::lockchain::Checkpoint) -> Result<pb::Checkpoint, ApiError> {
    Ok(pb::Checkpoint {
        root: c.root_bytes()?,
        size: c.size,
        note: c.note,
        taken_at: c.taken_at,
    })
}

fn found(f: types::Found) -> pb::Found {
    pb::Found { id: f.id }
}

/// One thing a case waits for: its kind and the fields that kind has.
fn wait(w: types::CaseWait) -> pb::CaseWait {
    use types::CaseWait as W;
    let at = |net_instance: u32, task: String| Some(pb::TaskRef { net_instance, task });
    let none = pb::CaseWait::default();
    match w {
        W::Start => pb::CaseWait {
            kind: "start".into(),
            ..none
        },
        W::Resume => pb::CaseWait {
            kind: "resume".into(),
            ..none
        },
        W::WorkItem {
            item,
            task,
            net_instance,
            state,
            roles,
            user,
            since,
        } => pb::CaseWait {
            kind: "work_item".into(),
            task: at(net_instance, task),
            item: Some(item),
            state: Some(state),
            roles,
            user,
            since: Some(since),
            ..none
        },
        W::Call {
            item,
            task,
            net_instance,
            connector,
            idempotency_key,
            since,
        } => pb::CaseWait {
            kind: "call".into(),
            task: at(net_instance, task),
            item: Some(item),
            connector: Some(connector),
            idempotency_key: Some(idempotency_key),
            since: Some(since),
            ..none
        },
        W::Timer {
            timer,
            task,
            net_instance,
            fires_at,
        } => pb::CaseWait {
            kind: "timer".into(),
            task: at(net_instance, task),
            timer: Some(timer),
            fires_at: Some(fires_at),
            ..none
        },
        W::Retry {
            task,
            net_instance,
            reason,
            attempt,
            since,
        } => pb::CaseWait {
            kind: "retry".into(),
            task: at(net_instance, task),
            reason: Some(reason),
            attempt: Some(attempt),
            since: Some(since),
            ..none
        },
        W::Trigger {
            task,
            net_instance,
            event,
        } => pb::CaseWait {
            kind: "trigger".into(),
            task: at(net_instance, task),
            event: Some(event),
            ..none
        },
    }
}

fn workflow(w: types::Workflow) -> pb::Workflow {
    pb::Workflow {
        id: w.id,
        uri: w.uri,
        name: w.name,
        version: w.version,
        format: w.format,
        tasks: w.tasks,
        registered_at: w.registered_at,
        source: w.source,
    }
}

fn case(c: types::Case) -> pb::Case {
    pb::Case {
        id: c.id,
        workflow_id: c.workflow_id,
        status: c.status,
        data: Some(json_to_struct(c.data)),
        marking: c
            .marking
            .into_iter()
            .map(|m| pb::Marked {
                net_instance: m.net_instance,
                condition: m.condition,
                tokens: m.tokens,
            })
            .collect(),
        version: c.version,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

fn work_item(w: types::WorkItem) -> pb::WorkItem {
    pb::WorkItem {
        id: w.id,
        case_id: w.case_id,
        task: w.task,
        net_instance: w.net_instance,
        instance: w.instance,
        roles: w.roles,
        allocation: w.allocation,
        status: w.status,
        owner: w.owner,
        input: Some(json_to_value(w.input)),
        offered_at: w.offered_at,
    }
}

/// An event: the fields most kinds share, typed, when the event has them; all of its fields
/// in `detail`.
fn event(e: types::CaseEvent) -> pb::CaseEvent {
    let f = &e.event;
    let string = |key: &str| f.get(key).and_then(Value::as_str).map(str::to_owned);
    let task = f.get("task").and_then(|t| {
        Some(pb::TaskRef {
            net_instance: u32::try_from(t.get("net_instance")?.as_u64()?).ok()?,
            task: t.get("task")?.as_str()?.to_owned(),
        })
    });
    let state_change = e.kind == "case_state_changed";
    let output = match f.get("output") {
        Some(Value::Object(m)) => Some(json_to_struct(m.clone())),
        _ => None,
    };
    pb::CaseEvent {
        seq: e.seq,
        time: e.time,
        time_ms: e.time_ms,
        kind: e.kind,
        task,
        work_item_id: string("item"),
        user: string("user"),
        reason: string("reason"),
        // Only a change of the case's status has statuses under `from`/`to` (a delegation
        // has users there).
        from_status: state_change.then(|| string("from")).flatten(),
        to_status: state_change.then(|| string("to")).flatten(),
        output,
        detail: Some(json_to_struct(e.event)),
    }
}

/// A JSON object as a Struct.
pub fn json_to_struct(map: Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A JSON value as a protobuf Value. Numbers become doubles (protobuf's only number).
pub fn json_to_value(v: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A Struct as a JSON object, refusing what JSON cannot hold (a number that is not finite, a
/// value without a kind) and nesting deeper than `max` (as JSON bodies are), naming `field`.
pub fn struct_to_json(
    field: &str,
    s: prost_types::Struct,
    max: usize,
    depth: usize,
) -> Result<Map<String, Value>, ApiError> {
    if depth > max {
        return Err(
            ApiError::invalid(field, format!("{field}: nested deeper than {max} levels"))
                .with("limit", max),
        );
    }
    s.fields
        .into_iter()
        .map(|(k, v)| {
            let path = format!("{field}.{k}");
            value_to_json(&path, v, max, depth + 1).map(|v| (k, v))
        })
        .collect()
}

fn value_to_json(
    field: &str,
    v: prost_types::Value,
    max: usize,
    depth: usize,
) -> Result<Value, ApiError> {
    use prost_types::value::Kind;
    Ok(match v.kind {
        None => {
            return Err(ApiError::invalid(
                field,
                format!("{field}: a Value with no kind set"),
            ));
        }
        Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(field, n)?,
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => {
            if depth > max {
                return Err(ApiError::invalid(
                    field,
                    format!("{field}: nested deeper than {max} levels"),
                )
                .with("limit", max));
            }
            Value::Array(
                l.values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| value_to_json(&format!("{field}[{i}]"), v, max, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(field, s, max, depth)?),
    })
}

/// A protobuf number as JSON: a whole number within ±2^53 as an integer (as JSON bodies
/// give it), other finite numbers as they are; NaN and infinities are refused.
fn number(field: &str, n: f64) -> Result<Value, ApiError> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if !n.is_finite() {
        return Err(ApiError::invalid(
            field,
            format!("{field}: {n} is not a number JSON can hold"),
        ));
    }
    if n.fract() == 0.0 && n.abs() <= EXACT {
        #[allow(clippy::cast_possible_truncation)]
        return Ok(Value::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| {
            ApiError::invalid(field, format!("{field}: {n} is not a number JSON can hold"))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn structs_and_json_objects_convert_both_ways() {
        let json = serde_json::json!({"a": 1, "b": [true, null, "x", 2.5], "c": {"d": -3}});
        let Value::Object(map) = json.clone() else {
            unreachable!()
        };
        let back = struct_to_json("data", json_to_struct(map), 64, 1).unwrap();
        assert_eq!(Value::Object(back), json);
    }

    #[test]
    fn a_struct_too_deep_or_not_json_is_refused_naming_the_field() {
        let mut v = serde_json::json!(1);
        for _ in 0..10 {
            v = serde_json::json!({"x": v});
        }
        let Value::Object(map) = v else {
            unreachable!()
        };
        let e = struct_to_json("data", json_to_struct(map.clone()), 5, 1).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(struct_to_json("data", json_to_struct(map), 64, 1).is_ok());
        let mut s = prost_types::Struct::default();
        s.fields.insert(
            "n".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
            },
        );
        let e = struct_to_json("data", s, 64, 1).unwrap_err();
        assert_eq!(e.details["field"], "data.n");
    }

    /// A call that takes longer than the limit is answered DEADLINE_EXCEEDED, and the call
    /// itself runs on (it is not cut between a commit and its effects).
    #[tokio::test]
    async fn a_call_over_the_time_limit_gets_deadline_exceeded_and_runs_on() {
        let store = Arc::new(knhk_store::MemoryStore::default());
        let engine = knhk_workflow_engine::WorkflowEngine::new(
            knhk_workflow_engine::EngineConfig::with_defaults(
                store,
                knhk_workflow_engine::Directory::default(),
            ),
        );
        let limits = crate::Limits {
            request_timeout: std::time::Duration::from_millis(20),
            ..crate::Limits::default()
        };
        let grpc = Grpc::new(Service::new(engine, limits));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let e = grpc
            .call(move |_| async move {
                let _ = rx.await;
                let _ = done_tx.send(());
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(
            e.metadata().get(ERROR_CODE_KEY).unwrap().to_str().unwrap(),
            "deadline_exceeded"
        );
        // The call was not dropped: let it finish, and it does.
        tx.send(()).unwrap();
        done_rx.await.unwrap();
    }

    /// Every REST route but the process's own (health, readiness, the OpenAPI document) has
    /// its method in `knhk.v1.WorkflowService`, and every method answers a route: a route
    /// added to REST alone fails here.
    #[test]
    fn every_rest_operation_has_its_grpc_method() {
        use prost::Message;
        use std::collections::BTreeSet;
        const PAIRS: &[(&str, &str, &str)] = &[
            ("POST", "/workflows", "RegisterWorkflow"),
            ("GET", "/workflows", "ListWorkflows"),
            ("GET", "/workflows/{id}", "GetWorkflow"),
            ("GET", "/workflows/{id}/spec", "GetWorkflowSpec"),
            ("POST", "/cases", "CreateCase"),
            ("GET", "/cases", "ListCases"),
            ("GET", "/cases/{id}", "GetCase"),
            ("POST", "/cases/{id}/execute", "ExecuteCase"),
            ("POST", "/cases/{id}/cancel", "CancelCase"),
            ("POST", "/cases/{id}/suspend", "SuspendCase"),
            ("POST", "/cases/{id}/resume", "ResumeCase"),
            ("POST", "/cases/{id}/triggers/{event}", "TriggerCase"),
            ("GET", "/cases/{id}/waits", "GetCaseWaits"),
            ("GET", "/cases/{id}/history", "GetHistory"),
            ("GET", "/cases/{id}/watch", "WatchCase"),
            ("GET", "/workitems", "ListWorkItems"),
            ("GET", "/workitems/{id}", "GetWorkItem"),
            ("POST", "/workitems/{id}/claim", "ClaimWorkItem"),
            ("POST", "/workitems/{id}/start", "StartWorkItem"),
            ("POST", "/workitems/{id}/complete", "CompleteWorkItem"),
            ("POST", "/workitems/{id}/fail", "FailWorkItem"),
            ("POST", "/workitems/{id}/release", "ReleaseWorkItem"),
            ("POST", "/workitems/{id}/delegate", "DelegateWorkItem"),
            ("POST", "/workitems/{id}/offer", "OfferWorkItem"),
            ("POST", "/workitems/{id}/allocate", "AllocateWorkItem"),
            ("POST", "/cases/{id}/retry", "RetryCase"),
            ("POST", "/cases/{id}/data", "SetCaseData"),
            ("POST", "/cases/{id}/instances", "AddInstance"),
            ("POST", "/cases/{id}/complete-task", "CompleteTask"),
            ("GET", "/lookup/cases/{prefix}", "LookupCase"),
            ("GET", "/lookup/workitems/{prefix}", "LookupWorkItem"),
            ("GET", "/lookup/workflows/{reference}", "LookupWorkflow"),
            ("GET", "/quarantine", "ListQuarantine"),
            ("POST", "/cases/{id}/release", "ReleaseCase"),
            ("GET", "/connectors", "ListConnectors"),
            ("GET", "/cases/{id}/events/{seq}/receipt", "GetReceipt"),
            ("GET", "/lockchain/consistency", "GetConsistencyProof"),
            ("GET", "/lockchain/checkpoint", "GetCheckpoint"),
            ("GET", "/lockchain/public-key", "GetPublicKey"),
        ];
        let own = ["/health", "/ready", "/openapi.json"];
        let routes: BTreeSet<(&str, &str)> = crate::rest::route_table()
            .into_iter()
            .filter(|(_, path)| !own.contains(path))
            .collect();
        let paired: BTreeSet<(&str, &str)> = PAIRS.iter().map(|(m, p, _)| (*m, *p)).collect();
        assert_eq!(routes, paired, "REST routes without a gRPC method, or gone");
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let methods: BTreeSet<String> = set
            .file
            .iter()
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == "WorkflowService")
            .flat_map(|s| &s.method)
            .map(|m| m.name().to_owned())
            .collect();
        let named: BTreeSet<String> = PAIRS.iter().map(|(_, _, m)| (*m).to_owned()).collect();
        assert_eq!(methods, named);
    }

    #[test]
    fn every_code_maps_to_its_grpc_status_and_names_itself() {
        for code in Code::ALL {
            let s = status(&ApiError::new(code, "m"));
            assert_eq!(s.code() as i32, code.grpc_code());
            assert_eq!(
                s.metadata().get(ERROR_CODE_KEY).unwrap().to_str().unwrap(),
                code.as_str()
            );
        }
    }
}
