//! The set-up every flow consumer shares: its store, the Amplience client, the
//! partner profiles, the side-effect ledger and the templates.

use std::{sync::Arc, time::Duration};

use gridsync_amplience::ManagementClient;
use gridsync_core::app::{AppError, ConsumerDeps};
use gridsync_store::Store;

use crate::{args::FlowArgs, config::MessageConfig, partners::PartnerProfiles, Effects, Templates};

pub struct FlowContext {
    pub name: String,
    pub store: Store,
    pub amplience: Arc<ManagementClient>,
    pub partners: PartnerProfiles,
    pub effects: Effects,
    /// The items the flow keeps up to date, their changes coalesced.
    pub keyed_items: crate::keyed_items::KeyedItems,
    pub deps: ConsumerDeps,
    /// The flags it was built from (lease, clock, timers, templates' freshness).
    pub args: FlowArgs,
}

impl FlowContext {
    /// Opens the store, builds the Amplience client and reads the partner profiles.
    pub async fn connect(deps: ConsumerDeps, args: FlowArgs) -> Result<Self, AppError> {
        let name = deps.name.clone();
        let url = args.store_url.clone().unwrap_or_else(|| format!("sqlite://{name}-consumer.db"));
        let store = Store::connect(&url).await.map_err(AppError::other)?;
        let amplience = Arc::new(ManagementClient::new(&args.amplience).map_err(AppError::other)?);
        deps.metrics.register(Box::new(crate::telemetry::AmplienceCalls::new(amplience.clone())?))?;
        let partners = match &args.partners {
            Some(path) => PartnerProfiles::load(path).map_err(AppError::other)?,
            None => {
                tracing::warn!("no partner profiles (--partners): every partner's records will be dead-lettered");
                PartnerProfiles::default()
            }
        };
        tracing::info!(store = %store.backend(), partners = partners.len(), "{name} flow ready");
        let effects = Effects::new(
            &name,
            deps.kafka.clone(),
            store.side_effects(),
            deps.producer.clone(),
            &deps.metrics,
            Duration::from_millis(args.claim_lease_ms),
        )?;
        let member = format!("{name}/{}", effects.owner());
        crate::budget::join(&args, &amplience, &member, &deps).await?;
        let keyed_items = crate::keyed_items::KeyedItems::new(amplience.clone(), args.amplience.hub_id.clone());
        Ok(FlowContext { name, store, amplience, partners, effects, keyed_items, deps, args })
    }

    /// The scheduler of this flow's durable timers, on the flow's clock.
    pub fn scheduler(&self) -> crate::scheduler::Scheduler {
        crate::scheduler::Scheduler {
            timers: self.store.timers(&self.name),
            clock: self.clock(),
            tick: Duration::from_millis(self.args.timer_tick_ms),
            lease: Duration::from_millis(self.args.claim_lease_ms),
            owner: self.effects.owner().to_owned(),
        }
    }

    /// The flow's clock: the system's, or the one `--clock-file` sets.
    pub fn clock(&self) -> crate::clock::Clock {
        self.args.clock()
    }

    /// Messages of `config` created as `content_type_uri`.
    pub fn messages(&self, config: &MessageConfig, content_type_uri: &str) -> crate::Messages {
        crate::Messages {
            client: self.amplience.clone(),
            templates: self.templates(&config.template_repository_id, config.approved_states.clone()),
            repository_id: config.repository_id.clone(),
            content_type_uri: content_type_uri.to_owned(),
            hub_id: self.args.amplience.hub_id.clone(),
        }
    }

    /// Templates in `repository_id`, approved in one of `approved_states`.
    pub fn templates(&self, repository_id: &str, approved_states: Vec<String>) -> Templates {
        Templates::new(
            self.amplience.clone(),
            repository_id.to_owned(),
            approved_states,
            self.store.approved_templates(),
            Duration::from_millis(self.args.template_ttl_ms),
        )
    }
}
