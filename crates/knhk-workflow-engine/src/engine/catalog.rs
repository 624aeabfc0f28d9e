//! The workflow catalog: registering definitions (in the format they came in) and loading the
//! validated workflows that cases run on, each once per process.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use knhk_connectors::Registry;
use knhk_core::model::{Specification, TaskBinding};
use knhk_core::{Workflow, WorkflowId};
use knhk_store::WorkflowRecord;
use tracing::{debug, info};
use uuid::Uuid;

use super::{WorkflowEngine, lock};
use crate::error::{ConnectorProblem, Error};
use crate::records;
use crate::view::{Registration, SourceFormat, WorkflowSummary, WorkflowView};

/// How many times registering tries the next version when concurrent registrations keep
/// taking it: each lost try means another registration of the URI succeeded.
const MAX_REGISTER_ATTEMPTS: usize = 64;

/// The validated workflows this engine has loaded, by id.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    loaded: Mutex<HashMap<WorkflowId, Arc<Workflow>>>,
}

impl Catalog {
    /// The workflows loaded so far.
    fn loaded_now(&self) -> Vec<Arc<Workflow>> {
        lock(&self.loaded).values().cloned().collect()
    }
}

impl WorkflowEngine {
    /// Returns the workflows loaded so far.
    pub(super) fn loaded_workflows(&self) -> Vec<Arc<Workflow>> {
        self.inner.catalog.loaded_now()
    }

    /// Parses, validates and stores a workflow definition given as text. `source_name` names
    /// it in errors and, unless it is an IRI, in the base IRI of its relative IRIs. The
    /// definition becomes the next version of its specification URI, unless it is identical
    /// to the latest one, which is returned instead.
    pub async fn register_workflow(
        &self,
        source_name: &str,
        format: SourceFormat,
        text: &str,
    ) -> Result<Registration, Error> {
        let base = if source_name.contains("://") {
            source_name.to_string()
        } else {
            format!("urn:knhk:workflow:{}", sanitize(source_name))
        };
        let source = knhk_spec::Source {
            name: source_name,
            base_iri: &base,
            text,
        };
        let options = self.spec_options();
        let loaded = match format {
            SourceFormat::Turtle => knhk_spec::load_turtle_with(&source, &options)?,
            SourceFormat::YawlXml => knhk_spec::load_yawl_xml_with(&source, &options)?,
        };
        self.register_loaded(loaded.workflow, format, text).await
    }

    /// Registers the workflow in a file, as [`register_workflow`](Self::register_workflow)
    /// does; its extension names the format (`.ttl`, `.yawl`, `.xml`).
    pub async fn register_file(&self, path: &Path) -> Result<Registration, Error> {
        let format = SourceFormat::of_path(path).ok_or_else(|| {
            Error::Definition(knhk_spec::Error::UnsupportedFormat {
                file: path.display().to_string(),
            })
        })?;
        let (loaded, text) = knhk_spec::load_file_with(path, &self.spec_options())?;
        self.register_loaded(loaded.workflow, format, &text).await
    }

    /// Returns how definitions are read here: manual tasks whose work items an administrator
    /// distributes at run time go to this engine's administrators' role.
    fn spec_options(&self) -> knhk_spec::Options {
        knhk_spec::Options {
            admin_role: self.inner.admin_role.clone(),
            limits: self.inner.definition_limits,
        }
    }

    /// Stores `wf` as the next version of its specification URI, unless the latest version
    /// of that URI is the same definition, which is returned instead. A version taken by a
    /// concurrent registration (another process) is retried with the next number.
    async fn register_loaded(
        &self,
        wf: Workflow,
        format: SourceFormat,
        text: &str,
    ) -> Result<Registration, Error> {
        let spec = wf.specification();
        self.check_connectors(spec)?;
        let uri = spec.id.clone();
        let name = spec.name.clone().unwrap_or_else(|| spec.id.clone());
        let parsed = serde_json::to_value(spec).map_err(|source| {
            Error::Store(knhk_store::Error::Encode {
                what: "workflow specification",
                source,
            })
        })?;
        let store = &self.inner.store;
        for _ in 0..MAX_REGISTER_ATTEMPTS {
            let latest = store.latest_workflow(&uri).await?;
            // The same definition (whatever its layout and comments) is not a new version.
            if let Some(latest) = latest.as_ref().filter(|w| w.spec == parsed) {
                info!(workflow = %latest.id, %uri, version = latest.version, "workflow already registered");
                return Ok(Registration {
                    workflow: records::workflow_view(latest.clone())?,
                    already_registered: true,
                });
            }
            let version = latest.map_or(1, |w| w.version.saturating_add(1));
            let record = WorkflowRecord {
                id: WorkflowId(Uuid::new_v4()),
                uri: uri.clone(),
                name: name.clone(),
                version,
                format: format.as_str().to_string(),
                source: text.to_string(),
                spec: parsed.clone(),
                registered_at: self.inner.clock.now(),
            };
            match store.put_workflow(&record).await {
                Ok(()) => {
                    let id = record.id;
                    lock(&self.inner.catalog.loaded).insert(id, Arc::new(wf));
                    info!(workflow = %id, %uri, name = %record.name, version, %format, "workflow registered");
                    return Ok(Registration {
                        workflow: records::workflow_view(record)?,
                        already_registered: false,
                    });
                }
                Err(knhk_store::Error::DuplicateVersion { .. }) => {
                    debug!(%uri, version, "version taken by a concurrent registration");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::RegistrationBusy { uri })
    }

    /// Refuses a workflow naming a connector this engine does not have, or settings the
    /// connector refuses: they would only fail when a case reaches the task.
    fn check_connectors(&self, spec: &Specification) -> Result<(), Error> {
        let problems = connector_problems(&self.inner.connectors, spec);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Connectors {
                workflow: spec.id.clone(),
                problems,
            })
        }
    }

    /// Returns every registered workflow without its source, ordered by name, then version
    /// (and id): the sources and parsed definitions are not read.
    pub async fn workflows(&self) -> Result<Vec<WorkflowSummary>, Error> {
        self.inner
            .store
            .workflow_summaries()
            .await?
            .into_iter()
            .map(records::workflow_summary)
            .collect()
    }

    /// Returns one registered workflow.
    pub async fn workflow(&self, id: WorkflowId) -> Result<WorkflowView, Error> {
        let record = self
            .inner
            .store
            .workflow(id)
            .await?
            .ok_or(Error::UnknownWorkflow(id))?;
        records::workflow_view(record)
    }

    /// Returns the validated definition of a registered workflow (its nets, tasks, bindings).
    pub async fn definition(&self, id: WorkflowId) -> Result<Arc<Workflow>, Error> {
        if let Some(wf) = lock(&self.inner.catalog.loaded).get(&id) {
            return Ok(wf.clone());
        }
        let record = self
            .inner
            .store
            .workflow(id)
            .await?
            .ok_or(Error::UnknownWorkflow(id))?;
        let spec: Specification =
            serde_json::from_value(record.spec).map_err(|e| Error::CorruptWorkflow {
                id,
                source: e.into(),
            })?;
        let wf = Arc::new(Workflow::new(spec).map_err(|e| Error::CorruptWorkflow {
            id,
            source: e.into(),
        })?);
        lock(&self.inner.catalog.loaded).insert(id, wf.clone());
        Ok(wf)
    }
}

/// Returns, for every connector task of `spec`, why `connectors` would refuse it: an unknown
/// connector, or settings it does not take. Registering refuses a workflow with any; `knhk
/// validate` reports them from the same check.
pub fn connector_problems(connectors: &Registry, spec: &Specification) -> Vec<ConnectorProblem> {
    spec.nets
        .iter()
        .flat_map(|net| &net.tasks)
        .filter_map(|task| match &task.binding {
            TaskBinding::Connector(c) => connectors
                .check_settings(&c.connector, &c.settings)
                .err()
                .map(|error| ConnectorProblem {
                    task: task.id.to_string(),
                    error,
                }),
            _ => None,
        })
        .collect()
}

/// Turns a source name into the last segment of a `urn:` IRI.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
