//! Typed calls of the palreg REST API (shapes as in `server/src/routes/`).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{Request, Transport};

/// A client of one server, signed in or not.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    transport: Arc<dyn Transport>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Institution {
    pub id: i64,
    pub code: String,
    pub name: String,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Me {
    pub id: i64,
    pub login: String,
    pub full_name: String,
    pub roles: Vec<String>,
    pub institution: Option<Institution>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Envelope {
    pub institution_id: i64,
    pub key_version: i32,
    pub envelope: String,
    /// The link of this key version to the one before it (client-crypto `key_chain`): null
    /// for version 1 and for versions made before links were kept.
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Member {
    pub user_id: i64,
    pub login: String,
    pub full_name: String,
    pub public_key: Option<String>,
    pub fingerprint: Option<String>,
    pub holds: Vec<i32>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct KeyVersion {
    pub version: i32,
    pub created_by: i64,
    /// See [`Envelope::link`].
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Members {
    pub institution_id: i64,
    pub current_version: Option<i32>,
    /// The institution's key versions, as the server lists them.
    #[serde(default)]
    pub versions: Vec<KeyVersion>,
    pub members: Vec<Member>,
    pub passports_pending_rotation: i64,
    /// Observation notes still under an older key version (re-sealed by the browser's rotation).
    #[serde(default)]
    pub notes_pending_rotation: i64,
}

/// The pseudonymized record, as the server stores it.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
pub struct Record {
    pub sex: String,
    pub birth_year: i32,
    pub district_id: Option<i64>,
    pub diagnosis_id: i64,
    pub care_form_id: Option<i64>,
    pub status: String,
    pub registered_on: String,
    #[serde(default)]
    pub discharged_on: Option<String>,
    #[serde(default)]
    pub deceased_on: Option<String>,
    #[serde(default)]
    pub needs: Vec<i64>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct PatientView {
    pub id: i64,
    pub pseudonym: String,
    pub passport: String,
    pub passport_key_version: i32,
    pub record: Record,
    pub version: i32,
}

#[derive(Deserialize, Debug)]
pub struct PatientPage {
    pub items: Vec<PatientView>,
    pub total: i64,
    pub next_after: Option<i64>,
}

/// What the server needs to register a patient: nothing here is in clear but the record.
#[derive(Serialize, Debug, Clone)]
pub struct NewPatient {
    pub pseudonym: String,
    pub passport: String,
    pub blind_indexes: Vec<String>,
    pub record: Record,
}

#[derive(Deserialize, Debug, Clone)]
pub struct RefEntry {
    pub id: i64,
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub active: bool,
}

impl Api {
    pub fn new(base: &str, transport: Arc<dyn Transport>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: None,
            transport,
        }
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends a request; a 2xx answer is parsed as `T` (an empty body as JSON `null`).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let body = body.map(serde_json::to_string).transpose()?;
        let response = self.transport.send(&Request {
            method,
            url: &url,
            token: self.token.as_deref(),
            body: body.as_deref(),
        })?;
        if (200..300).contains(&response.status) {
            let text = if response.body.trim().is_empty() {
                "null"
            } else {
                &response.body
            };
            return Ok(serde_json::from_str(text)?);
        }
        let error: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        Err(Error::Api {
            status: response.status,
            code: error["error"]["code"]
                .as_str()
                .unwrap_or("http_error")
                .to_string(),
            message: error["error"]["message"]
                .as_str()
                .unwrap_or("no details")
                .to_string(),
        })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call("GET", path, None)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.call("POST", path, Some(body))
    }

    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.call("PUT", path, Some(body))
    }

    /// Signs in (with the authenticator's code, for an account with a second factor);
    /// returns a client holding the bearer token.
    pub fn login(&self, login: &str, password: &str, totp: Option<&str>) -> Result<Api> {
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
        }
        let t: Token = self.post(
            "/api/v1/auth/login",
            &serde_json::json!({"login": login, "password": password, "totp": totp}),
        )?;
        Ok(self.clone().with_token(&t.access_token))
    }

    pub fn logout(&self) -> Result<()> {
        self.post::<Value>("/api/v1/auth/logout", &serde_json::json!({}))
            .map(|_| ())
    }

    pub fn me(&self) -> Result<Me> {
        self.get("/api/v1/me")
    }

    pub fn envelopes(&self) -> Result<Vec<Envelope>> {
        self.get("/api/v1/me/envelopes")
    }

    pub fn members(&self, institution_id: i64) -> Result<Members> {
        self.get(&format!("/api/v1/institutions/{institution_id}/members"))
    }

    pub fn refs(&self, book: &str) -> Result<Vec<RefEntry>> {
        self.get(&format!("/api/v1/refs/{book}"))
    }

    pub fn search(&self, query: &Value) -> Result<PatientPage> {
        self.post("/api/v1/patients/search", query)
    }

    pub fn patient(&self, id: i64) -> Result<PatientView> {
        self.get(&format!("/api/v1/patients/{id}"))
    }

    /// Imports a batch (all or nothing); returns the new ids in order.
    pub fn import(&self, batch: &[NewPatient]) -> Result<Vec<i64>> {
        #[derive(Deserialize)]
        struct Ids {
            ids: Vec<i64>,
        }
        let ids: Ids = self.post(
            "/api/v1/patients/import",
            &serde_json::json!({ "patients": batch }),
        )?;
        Ok(ids.ids)
    }
}
