//! JWT access tokens from an external identity provider, through the real binary: RS256,
//! ES256 and EdDSA tokens signed with keys this test generates, validated against a JWKS file;
//! the refusals (`alg: none`, HMAC with the public key, unknown `kid`, expired, wrong audience
//! or issuer); and the user's state gating access.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use switchyard_proto::zitadel::management::v1 as mgmt;
use switchyard_proto::zitadel::management::v1::management_service_client::ManagementServiceClient;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_proto::zitadel::user::v2::user_service_client::UserServiceClient;
use switchyard_tests::Server;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "switchyard-tests";

struct Key {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    public_pem: Vec<u8>,
}

/// Generates a private key with the openssl CLI (PKCS#8 PEM) and its public key.
fn generate(dir: &Path, kid: &'static str, alg: Algorithm, genpkey: &[&str]) -> Key {
    let private = dir.join(format!("{kid}.pem"));
    let public = dir.join(format!("{kid}.pub.pem"));
    let status = Command::new("openssl")
        .arg("genpkey")
        .args(genpkey)
        .arg("-out")
        .arg(&private)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "openssl genpkey {genpkey:?} (is openssl installed?)"
    );
    let status = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status();
    assert!(status.is_ok_and(|s| s.success()), "openssl pkey -pubout");
    let pem = std::fs::read(&private).expect("private key");
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .expect("encoding key");
    Key {
        kid,
        alg,
        encoding,
        public_pem: std::fs::read(&public).expect("public key"),
    }
}

fn jwk(key: &Key) -> Jwk {
    if key.alg == Algorithm::EdDSA {
        // jsonwebtoken cannot derive an Ed25519 JWK; build the OKP key from the public key:
        // its SubjectPublicKeyInfo DER ends with the 32 raw key bytes (RFC 8410).
        let pem = String::from_utf8(key.public_pem.clone()).expect("pem");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("der");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        return serde_json::from_value(
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "alg": "EdDSA"}),
        )
        .expect("okp jwk");
    }
    let mut jwk = Jwk::from_encoding_key(&key.encoding, key.alg).expect("jwk");
    jwk.common.key_id = Some(key.kid.to_owned());
    jwk
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn sign(key: &Key, claims: serde_json::Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign")
}

fn claims(sub: &str) -> serde_json::Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "iat": now() })
}

/// The user's own v2 GetUserByID: a user may always read itself.
async fn whoami(server: &Server, token: &str, user_id: &str) -> Result<(), Code> {
    let channel = Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = UserServiceClient::new(channel);
    let mut request = Request::new(user_v2::GetUserByIdRequest {
        user_id: user_id.to_owned(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    client
        .get_user_by_id(request)
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

fn admin_request<T>(server: &Server, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", server.bearer().parse().expect("ascii"));
    request
}

#[tokio::test]
async fn jwts_from_an_external_idp_authenticate_and_state_gates_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = generate(
        dir.path(),
        "rsa-1",
        Algorithm::RS256,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let ec = generate(
        dir.path(),
        "ec-1",
        Algorithm::ES256,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let ed = generate(
        dir.path(),
        "ed-1",
        Algorithm::EdDSA,
        &["-algorithm", "ed25519"],
    );
    let late = generate(
        dir.path(),
        "ed-late",
        Algorithm::EdDSA,
        &["-algorithm", "ed25519"],
    );
    let jwks_path = dir.path().join("jwks.json");
    let write_jwks = |keys: Vec<Jwk>| {
        std::fs::write(
            &jwks_path,
            serde_json::to_vec(&JwkSet { keys }).expect("json"),
        )
        .expect("write jwks");
    };
    write_jwks(vec![jwk(&rsa), jwk(&ec), jwk(&ed)]);
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[jwt]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\"]\njwks_file = \"{}\"\n",
            jwks_path.display()
        ),
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &["--config", config.to_str().expect("utf-8 path")]);

    let channel = Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut admin = ManagementServiceClient::new(channel);
    let user_id = admin
        .add_machine_user(admin_request(
            &server,
            mgmt::AddMachineUserRequest {
                user_name: "idp-client".into(),
                name: "IdP client".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("machine user")
        .into_inner()
        .user_id;

    for key in [&rsa, &ec, &ed] {
        let token = sign(key, claims(&user_id));
        assert_eq!(
            whoami(&server, &token, &user_id).await,
            Ok(()),
            "{:?}",
            key.alg
        );
    }

    // Refusals.
    let none_token = {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(json!({"alg": "none", "kid": "rsa-1"}).to_string()),
            b64.encode(claims(&user_id).to_string())
        )
    };
    let hmac_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".to_owned());
        jsonwebtoken::encode(
            &header,
            &claims(&user_id),
            &EncodingKey::from_secret(&rsa.public_pem),
        )
        .expect("sign")
    };
    let mut expired = claims(&user_id);
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = claims(&user_id);
    not_yet["nbf"] = json!(now() + 3600);
    let mut wrong_aud = claims(&user_id);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims(&user_id);
    wrong_iss["iss"] = json!("https://evil.example");
    let unknown_kid = sign(&late, claims(&user_id));
    let cases = [
        ("alg none", none_token),
        ("HMAC with the public key", hmac_with_public_key),
        ("expired", sign(&rsa, expired)),
        ("not yet valid", sign(&rsa, not_yet)),
        ("wrong audience", sign(&ec, wrong_aud)),
        ("wrong issuer", sign(&ed, wrong_iss)),
        ("unknown kid", unknown_kid.clone()),
        ("tampered", {
            let token = sign(&rsa, claims(&user_id));
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(claims("someone-else").to_string());
            parts.join(".")
        }),
    ];
    for (name, token) in &cases {
        assert_eq!(
            whoami(&server, token, &user_id).await,
            Err(Code::Unauthenticated),
            "{name}"
        );
    }

    // A key added to the set later is found on refresh, when a token names it.
    write_jwks(vec![jwk(&rsa), jwk(&ec), jwk(&ed), jwk(&late)]);
    assert_eq!(
        whoami(&server, &unknown_kid, &user_id).await,
        Ok(()),
        "refreshed on unknown kid"
    );

    // State gates JWTs too.
    let token = sign(&ed, claims(&user_id));
    admin
        .deactivate_user(admin_request(
            &server,
            mgmt::DeactivateUserRequest {
                id: user_id.clone(),
            },
        ))
        .await
        .expect("deactivate");
    assert_eq!(
        whoami(&server, &token, &user_id).await,
        Err(Code::Unauthenticated)
    );
    admin
        .reactivate_user(admin_request(
            &server,
            mgmt::ReactivateUserRequest {
                id: user_id.clone(),
            },
        ))
        .await
        .expect("reactivate");
    assert_eq!(whoami(&server, &token, &user_id).await, Ok(()));

    assert!(
        !server.log().join("\n").contains(&token),
        "tokens stay out of the log"
    );
}

/// Serves `body` as `application/json` to every request on a free port; counts the requests.
async fn serve_jwks(
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = body.lock().expect("body").clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    (url, hits)
}

/// The JWKS can come from a URL: fetched at start, and again (at most once per interval) when
/// a token names an unknown `kid`, so made-up kids cannot make the server hammer the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_from_a_url_is_fetched_at_start_and_refreshed_sparingly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ed = generate(
        dir.path(),
        "url-ed",
        Algorithm::EdDSA,
        &["-algorithm", "ed25519"],
    );
    let stranger = generate(
        dir.path(),
        "url-stranger",
        Algorithm::EdDSA,
        &["-algorithm", "ed25519"],
    );
    let body = std::sync::Arc::new(std::sync::Mutex::new(
        serde_json::to_vec(&JwkSet {
            keys: vec![jwk(&ed)],
        })
        .expect("json"),
    ));
    let (url, hits) = serve_jwks(std::sync::Arc::clone(&body)).await;
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[jwt]\nissuer = \"{ISSUER}\"\naudience = [\"{AUDIENCE}\"]\njwks_url = \"{url}\"\n"
        ),
    )
    .expect("config");
    let server = Server::start_in(
        &dir.path().join("data"),
        &["--config", config.to_str().expect("utf-8")],
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "fetched once at start"
    );

    let channel = Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut admin = ManagementServiceClient::new(channel);
    let user_id = admin
        .add_machine_user(admin_request(
            &server,
            mgmt::AddMachineUserRequest {
                user_name: "url-client".into(),
                name: "URL client".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("machine user")
        .into_inner()
        .user_id;
    assert_eq!(
        whoami(&server, &sign(&ed, claims(&user_id)), &user_id).await,
        Ok(())
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "known kid: no fetch"
    );

    // Unknown kids: the first triggers one refetch, the next ones within the interval none.
    for _ in 0..3 {
        let token = sign(&stranger, claims(&user_id));
        assert_eq!(
            whoami(&server, &token, &user_id).await,
            Err(Code::Unauthenticated)
        );
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one refresh for many unknown kids"
    );
}
