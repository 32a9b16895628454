//! The test identity provider's browser login over HTTP (without a browser): what it advertises
//! it serves; registration, the login page, the code and its refusals (reuse, wrong verifier,
//! wrong redirect URI, unregistered redirect URI, wrong password).

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::idp::{Idp, IdpOptions, User};

const CALLBACK: &str = "http://127.0.0.1:1/oauth/callback";
const VERIFIER: &str = "a-verifier-of-the-test-0123456789-abcdefghijkl";

async fn idp() -> Idp {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let key = crate::common::repo().join("examples/test_idp/keys/a1.pem");
    Idp::start(
        l,
        IdpOptions {
            keys: vec![("a1".into(), key.display().to_string())],
            users: vec![User {
                username: "alice".into(),
                password: "pw".into(),
                sub: "alice-sub".into(),
                resource_access: json!({}),
            }],
            clients: vec![],
            trust: vec![],
            audiences: vec![],
            user_audience: "mcp-gateway".into(),
            token_ttl: 300,
        },
    )
    .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The hidden `login` field of a login page.
fn login_id(page: &str) -> String {
    let start = page.find("name=\"login\" value=\"").expect("login field") + 20;
    page[start..].split('"').next().unwrap().to_owned()
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn register(c: &reqwest::Client, idp: &Idp) -> String {
    let r = c
        .post(format!("{}/register", idp.issuer))
        .json(
            &json!({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none",
                      "client_name": "test"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("client_secret").is_none(), "{v}");
    v["client_id"].as_str().unwrap().to_owned()
}

/// Logs in as alice for `client`; returns the `Location` the login redirects to.
async fn log_in(c: &reqwest::Client, idp: &Idp, client: &str, password: &str) -> (u16, String) {
    let page = c
        .get(format!("{}/authorize", idp.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", CALLBACK),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("state", "the-state"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let r = c
        .post(format!("{}/authorize", idp.issuer))
        .form(&[
            ("login", login_id(&html).as_str()),
            ("username", "alice"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location.unwrap_or(r.text().await.unwrap()))
}

async fn redeem(
    c: &reqwest::Client,
    idp: &Idp,
    client: &str,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> (u16, Value) {
    let r = c
        .post(format!("{}/token", idp.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn every_advertised_endpoint_is_served() {
    let idp = idp().await;
    let c = http();
    let d: Value = c
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "registration_endpoint",
    ] {
        let url = d[key].as_str().unwrap_or_else(|| panic!("{key}: {d}"));
        let method = if key.contains("token") || key.contains("registration") {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let status = c.request(method, url).send().await.unwrap().status();
        assert!(
            status != 404 && status != 405,
            "{key} {url} is advertised but answers {status}"
        );
    }
}

#[tokio::test]
async fn a_code_is_for_one_redemption_by_its_client_with_its_verifier() {
    let idp = idp().await;
    let c = http();
    let client = register(&c, &idp).await;

    let (status, body) = log_in(&c, &idp, &client, "wrong").await;
    assert_eq!(status, 200, "a wrong password shows the page again");
    assert!(body.contains("Wrong username or password"), "{body}");

    let (status, location) = log_in(&c, &idp, &client, "pw").await;
    assert_eq!(status, 303);
    assert!(location.starts_with(CALLBACK), "{location}");
    let q = query_of(&location);
    assert_eq!(q["state"], "the-state");
    let code = &q["code"];

    let (s, v) = redeem(&c, &idp, &client, code, CALLBACK, "x".repeat(43).as_str()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // That failed try used the code up.
    let (s, v) = redeem(&c, &idp, &client, code, CALLBACK, VERIFIER).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    let (_, location) = log_in(&c, &idp, &client, "pw").await;
    let code = query_of(&location)["code"].clone();
    let (s, v) = redeem(
        &c,
        &idp,
        &client,
        &code,
        "http://127.0.0.1:1/other",
        VERIFIER,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    let (_, location) = log_in(&c, &idp, &client, "pw").await;
    let code = query_of(&location)["code"].clone();
    let (s, v) = redeem(&c, &idp, "someone-else", &code, CALLBACK, VERIFIER).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );

    let (_, location) = log_in(&c, &idp, &client, "pw").await;
    let code = query_of(&location)["code"].clone();
    let (s, v) = redeem(&c, &idp, &client, &code, CALLBACK, VERIFIER).await;
    assert_eq!(s, 200, "{v}");
    let token = v["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "alice-sub");
    assert_eq!(claims["aud"], "mcp-gateway");
    assert_eq!(claims["azp"], client.as_str());
    let (s, _) = redeem(&c, &idp, &client, &code, CALLBACK, VERIFIER).await;
    assert_eq!(s, 400, "a code is redeemed once");
    assert_eq!(idp.stats().authorization_code, 1);
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_never_redirected_to() {
    let idp = idp().await;
    let c = http();
    let client = register(&c, &idp).await;
    let r = c
        .get(format!("{}/authorize", idp.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", client.as_str()),
            ("redirect_uri", "http://127.0.0.1:2/steal"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // A plain challenge goes back to the registered URI as an error, with the state.
    let r = c
        .get(format!("{}/authorize", idp.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", client.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
            ("state", "s1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "s1");
    // A login page that was never shown is refused.
    let r = c
        .post(format!("{}/authorize", idp.issuer))
        .form(&[
            ("login", "forged"),
            ("username", "alice"),
            ("password", "pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
