//! Every input a caller can give a case, each a named call that goes through
//! [`WorkflowEngine::apply`].

use knhk_core::{CaseId, Input, TaskRef, TimerId, Wait, WorkItemId};
use serde_json::{Map, Value};

use super::WorkflowEngine;
use crate::error::Error;
use crate::view::CaseView;

impl WorkflowEngine {
    /// Starts a created case and runs it until it waits or ends.
    pub async fn execute(&self, case: CaseId) -> Result<CaseView, Error> {
        self.apply(case, Input::Start).await
    }

    /// Cancels a case, a running one or one failed by a task: its work is withdrawn.
    pub async fn cancel(&self, case: CaseId, reason: &str) -> Result<CaseView, Error> {
        let reason = reason.to_string();
        self.apply(case, Input::Cancel { reason }).await
    }

    /// Suspends a running case: nothing moves until it is resumed (results of calls already
    /// made are still taken).
    pub async fn suspend(&self, case: CaseId) -> Result<CaseView, Error> {
        self.apply(case, Input::Suspend).await
    }

    /// Resumes a suspended case where it stood.
    pub async fn resume(&self, case: CaseId) -> Result<CaseView, Error> {
        self.apply(case, Input::Resume).await
    }

    /// Fires a timer of a case that has fallen due, as the timer service of a started engine
    /// does; a timer not yet due is refused with [`Error::TimerNotDue`], one the case does not
    /// wait for (it fired or was cancelled meanwhile) with an unknown-timer error.
    pub async fn fire_due_timer(&self, case: CaseId, timer: TimerId) -> Result<CaseView, Error> {
        let fires_at = self
            .waits(case)
            .await?
            .into_iter()
            .find_map(|w| match w {
                Wait::Timer {
                    timer: t, fires_at, ..
                } if t == timer => Some(fires_at),
                _ => None,
            })
            .ok_or(Error::Case(knhk_core::Error::UnknownTimer(timer)))?;
        let now = self.inner.clock.now();
        if fires_at > now {
            let due_in_ms = fires_at.0.saturating_sub(now.0);
            return Err(Error::TimerNotDue { timer, due_in_ms });
        }
        self.apply(case, Input::TimerFired { timer }).await
    }

    /// Retries a task of a case it failed (an incident): `task`, or the only failed one. A
    /// connector task makes a new call (a new work item, so a new idempotency key), a human
    /// task offers a new work item; once no incident is left the case runs again.
    pub async fn retry_case(&self, case: CaseId, task: Option<TaskRef>) -> Result<CaseView, Error> {
        self.apply(case, Input::RetryTask { task }).await
    }

    /// Delivers an outside event to a case's waiting trigger tasks.
    pub async fn trigger(&self, case: CaseId, event: &str, data: Value) -> Result<CaseView, Error> {
        let event = event.to_string();
        self.apply(case, Input::TriggerReceived { event, data })
            .await
    }

    /// Adds an instance to a running multiple-instance task created dynamically (WCP-15);
    /// `item` is the new instance's item.
    pub async fn add_instance(
        &self,
        case: CaseId,
        task: TaskRef,
        item: Value,
    ) -> Result<CaseView, Error> {
        self.apply(case, Input::AddInstance { task, item }).await
    }

    /// Completes a running task now, withdrawing its unfinished instances (WCP-27).
    pub async fn complete_task(&self, case: CaseId, task: TaskRef) -> Result<CaseView, Error> {
        self.apply(case, Input::CompleteTask { task }).await
    }

    /// Sets top-level keys of a case's data.
    pub async fn update_data(
        &self,
        case: CaseId,
        changes: Map<String, Value>,
    ) -> Result<CaseView, Error> {
        self.apply(case, Input::UpdateData { changes }).await
    }

    /// Returns the case a live work item belongs to.
    async fn case_of(&self, item: WorkItemId) -> Result<CaseId, Error> {
        Ok(self.work_item(item).await?.case)
    }

    /// Returns the case of a live work item that `user` may take, do or give up: with a
    /// directory of roles, only a member of one of the roles the item is offered to, or the
    /// user it is allocated to (an administrator may allocate it outside the role). (Who
    /// holds an allocated item is knhk-core's to check.) Without a directory the engine knows
    /// nobody's roles and trusts its caller.
    async fn case_for_member(&self, item: WorkItemId, user: &str) -> Result<CaseId, Error> {
        let view = self.work_item(item).await?;
        let directory = &self.inner.directory;
        let member = view
            .roles
            .iter()
            .any(|role| directory.users(role).iter().any(|u| u == user));
        let holder = view.owner.as_deref() == Some(user);
        if directory.is_empty() || view.roles.is_empty() || member || holder {
            Ok(view.case)
        } else {
            Err(Error::NotInRole {
                user: user.to_string(),
                item,
                roles: view.roles,
            })
        }
    }

    /// Allocates an offered work item to `user`.
    pub async fn claim(&self, item: WorkItemId, user: &str) -> Result<CaseView, Error> {
        let case = self.case_for_member(item, user).await?;
        let user = user.to_string();
        self.apply(case, Input::AllocateWorkItem { item, user })
            .await
    }

    /// Starts a work item (and its task, withdrawing a deferred choice's siblings).
    pub async fn start_work_item(&self, item: WorkItemId, user: &str) -> Result<CaseView, Error> {
        let case = self.case_for_member(item, user).await?;
        let user = user.to_string();
        self.apply(case, Input::StartWorkItem { item, user }).await
    }

    /// Completes a work item; `output` (a JSON object) merges into the case data.
    pub async fn complete_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        output: Value,
    ) -> Result<CaseView, Error> {
        let case = self.case_for_member(item, user).await?;
        let user = user.to_string();
        self.apply(case, Input::CompleteWorkItem { item, user, output })
            .await
    }

    /// Offers a work item that nobody has yet to other roles, replacing the roles it was
    /// offered to (YAWL's administrator distributing an unoffered item). `by` must hold the
    /// administrators' role when the engine has a directory of roles.
    pub async fn offer_work_item(
        &self,
        item: WorkItemId,
        roles: Vec<String>,
        by: &str,
    ) -> Result<CaseView, Error> {
        self.check_administrator(by)?;
        let case = self.case_of(item).await?;
        self.apply(case, Input::OfferWorkItem { item, roles }).await
    }

    /// Allocates a work item to `user` on an administrator's say. `by` must hold the
    /// administrators' role when the engine has a directory of roles.
    pub async fn allocate_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        by: &str,
    ) -> Result<CaseView, Error> {
        self.check_administrator(by)?;
        let case = self.case_of(item).await?;
        let user = user.to_string();
        self.apply(case, Input::AllocateWorkItem { item, user })
            .await
    }

    /// Refuses `user` unless they hold the administrators' role. Without a directory the
    /// engine knows nobody's roles, and trusts its caller (as it does for claims).
    fn check_administrator(&self, user: &str) -> Result<(), Error> {
        let directory = &self.inner.directory;
        if directory.is_empty()
            || directory
                .users(&self.inner.admin_role)
                .iter()
                .any(|u| u == user)
        {
            Ok(())
        } else {
            Err(Error::NotAdministrator {
                user: user.to_string(),
                role: self.inner.admin_role.clone(),
            })
        }
    }

    /// Gives an allocated work item back: it is offered to its roles again.
    pub async fn release_work_item(&self, item: WorkItemId, user: &str) -> Result<CaseView, Error> {
        let case = self.case_for_member(item, user).await?;
        let user = user.to_string();
        self.apply(case, Input::ReleaseWorkItem { item, user })
            .await
    }

    /// Hands a work item that `from` holds (allocated or started) to `to`, who must hold one
    /// of its roles when the engine has a directory; the history records both users.
    pub async fn delegate_work_item(
        &self,
        item: WorkItemId,
        from: &str,
        to: &str,
    ) -> Result<CaseView, Error> {
        let case = self.case_for_member(item, from).await?;
        self.case_for_member(item, to).await?;
        let (from, to) = (from.to_string(), to.to_string());
        self.apply(case, Input::DelegateWorkItem { item, from, to })
            .await
    }

    /// Gives up on a work item on `user`'s say: its task fails (and follows its failure flow,
    /// if it has one).
    pub async fn fail_work_item(
        &self,
        item: WorkItemId,
        user: &str,
        reason: &str,
    ) -> Result<CaseView, Error> {
        let case = self.case_for_member(item, user).await?;
        let reason = reason.to_string();
        self.apply(case, Input::FailWorkItem { item, reason }).await
    }
}
