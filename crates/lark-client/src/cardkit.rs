//! CardKit v1 card entities: create, stream element text, settings, full
//! update, batch update. Every mutation takes the card's `sequence`
//! (strictly increasing per card across all endpoints) and a `uuid`
//! idempotency key (generated when `None`, shared by retries).

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{new_uuid, seg, Call};
use crate::response::field;
use crate::{Client, Error};

const CREATE: &str = "POST /cardkit/v1/cards";
const CONTENT: &str = "PUT /cardkit/v1/cards/:card_id/elements/:element_id/content";
const SETTINGS: &str = "PATCH /cardkit/v1/cards/:card_id/settings";
const UPDATE: &str = "PUT /cardkit/v1/cards/:card_id";
const BATCH: &str = "POST /cardkit/v1/cards/:card_id/batch_update";

impl Client {
    /// Creates a card entity from card JSON 2.0 (as a string); returns the `card_id`.
    pub async fn create_card(&self, card_json: &str) -> Result<String, Error> {
        let call = Call::new(Method::POST, CREATE, "/cardkit/v1/cards".into())
            .json(json!({"type": "card_json", "data": card_json}));
        let body = self.call_json(&call).await?;
        field(&body, "/data/card_id", CREATE)
    }

    /// Sets the full text so far of a markdown / plain_text element of a card
    /// in streaming mode (the client animates the appended part).
    pub async fn stream_card_text(
        &self,
        card_id: &str,
        element_id: &str,
        content: &str,
        sequence: i64,
        uuid: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!(
            "/cardkit/v1/cards/{}/elements/{}/content",
            seg(card_id),
            seg(element_id)
        );
        let body = json!({"content": content});
        self.card_mutation(Method::PUT, CONTENT, path, card_id, body, sequence, uuid)
            .await
    }

    /// Changes card settings; `settings_json` is a JSON string such as
    /// `{"config":{"streaming_mode":false,"summary":{"content":"…"}}}`.
    pub async fn card_settings(
        &self,
        card_id: &str,
        settings_json: &str,
        sequence: i64,
        uuid: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!("/cardkit/v1/cards/{}/settings", seg(card_id));
        let body = json!({"settings": settings_json});
        self.card_mutation(Method::PATCH, SETTINGS, path, card_id, body, sequence, uuid)
            .await
    }

    /// Replaces the whole card with new card JSON 2.0 (as a string).
    pub async fn update_card(
        &self,
        card_id: &str,
        card_json: &str,
        sequence: i64,
        uuid: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!("/cardkit/v1/cards/{}", seg(card_id));
        let body = json!({"card": {"type": "card_json", "data": card_json}});
        self.card_mutation(Method::PUT, UPDATE, path, card_id, body, sequence, uuid)
            .await
    }

    /// Applies several actions in one call; `actions_json` is a JSON string
    /// of an array of `{"action": …, "params": {…}}`.
    pub async fn batch_update_card(
        &self,
        card_id: &str,
        actions_json: &str,
        sequence: i64,
        uuid: Option<&str>,
    ) -> Result<(), Error> {
        let path = format!("/cardkit/v1/cards/{}/batch_update", seg(card_id));
        let body = json!({"actions": actions_json});
        self.card_mutation(Method::POST, BATCH, path, card_id, body, sequence, uuid)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn card_mutation(
        &self,
        method: Method,
        route: &'static str,
        path: String,
        card_id: &str,
        mut body: Value,
        sequence: i64,
        uuid: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("sequence".into(), json!(sequence));
            obj.insert(
                "uuid".into(),
                json!(uuid.map_or_else(new_uuid, str::to_string)),
            );
        }
        let call = Call::new(method, route, path).json(body).target(card_id);
        self.call_json(&call).await.map(drop)
    }
}
