"""The secret-scrubbing table: made-up secrets that must go, look-alikes that must stay.

Every secret here is invented: random characters from a seeded generator in the
shape of the real format, so nothing in this file was ever a working credential
(and prefixes are joined at import time, so secret scanners don't flag the source).
Used by test_scrub_table.py and bench/scrub.py.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

_RNG = random.Random(20261127)
ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def fake(alphabet: str, n: int) -> str:
    """n random characters: the body of a made-up secret."""
    return "".join(_RNG.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    secret: str = ""  # for positives: the part that must not survive scrubbing


def _p(id: str, template: str, secret: str) -> Case:
    return Case(id, template.replace("{S}", secret), secret)


_AWS_ID_19 = "AK" + "IA" + fake(UPPER, 15)  # one character short of a real id
_PHX_SALT = fake(ALNUM, 8)
_SKB = fake(ALNUM + "+/", 64)
_JWT = "eyJ" + fake(URLSAFE, 20) + ".eyJ" + fake(URLSAFE, 40) + "." + fake(URLSAFE, 43)
_PEM_BODY = "\\n".join(fake(B64, 64) for _ in range(4))
_GCP_KEY = "-----BEGIN " + "PRIVATE KEY-----\\n" + _PEM_BODY + "\\n-----END " + "PRIVATE KEY-----\\n"

SECRETS: list[Case] = [
    # gitleaks' generic rule in Elixir's assignment forms
    _p("aws_key_wrong_length", 'config :app, aws_key: "{S}"', _AWS_ID_19),
    _p("keyword_api_key", 'config :my_app, MyApp.Mailer, api_key: "{S}"', fake(ALNUM, 32)),
    _p("keyword_password", '  password: "{S}",', "hunter2hunter2"),
    _p("keyword_password_random", '  password: "{S}",', fake(ALNUM + "!#%&", 16)),
    _p("match_assignment", 'token = "{S}"', fake(URLSAFE, 40)),
    _p("map_arrow", '%{"api_secret" => "{S}"}', fake(ALNUM, 30)),
    _p("map_atom_arrow", "%{client_secret: '{S}'}", fake(ALNUM, 24)),
    _p("module_attribute", '  @api_token "{S}"', fake(ALNUM, 36)),
    _p("module_attribute_key", '  @stripe_key "{S}"', fake(ALNUM, 28)),
    _p("env_file", "MAILGUN_API_KEY={S}\n", "key-" + fake(HEX, 32)),
    _p("env_file_export", "export AUTH_TOKEN={S}\n", fake(ALNUM, 40)),
    _p("json_key", '{"api_key": "{S}"}', fake(ALNUM, 40)),
    _p("yaml_quoted", 'access_token: "{S}"', fake(ALNUM + "-", 48)),
    _p("erlang_binary", '{api_key, <<"{S}">>}.', fake(HEX, 32)),
    _p("atom_argument", 'Application.put_env(:app, :auth_key, "{S}")', fake(ALNUM, 32)),
    _p("put_env_secret", 'Application.put_env(:ex_aws, :secret_access_key, "{S}")', fake(B64, 40)),
    _p("bearer_header", 'put_req_header(conn, "authorization", "Bearer {S}")', fake(ALNUM, 40)),
    _p("mix_formatted", '  secret_key_base:\n    "{S}",', _SKB),
    _p("credentials_field", 'credentials: "{S}"', fake(B64, 44)),
    _p("pwd", 'db_pwd = "{S}"', fake(ALNUM, 14)),
    _p("passwd", "smtp_passwd: '{S}'", fake(ALNUM, 12)),
    _p("get_env_fallback", 'System.get_env("SECRET_KEY_BASE") || "{S}"', _SKB[::-1]),
    _p("hex_api_key_env", "HEX_API_KEY={S}\n", fake(HEX, 32)),
    # Phoenix salts and secret_key_base wherever they appear
    _p("secret_key_base", 'config :app, AppWeb.Endpoint, secret_key_base: "{S}"', _SKB),
    _p("signing_salt", '  live_view: [signing_salt: "{S}"]', _PHX_SALT),
    _p(
        "signing_salt_attribute",
        '  @session_options [store: :cookie, key: "_app_key", signing_salt: "{S}"]',
        "Xk3mPq9Z",
    ),
    _p("encryption_salt", '  encryption_salt: "{S}",', fake(ALNUM, 8)),
    _p("skb_atom_arg", 'Keyword.put(opts, :secret_key_base, "{S}")', fake(ALNUM, 64)),
    # database and service URLs with a password
    _p("ecto_url", 'url: "ecto://app:{S}@db.internal/app_prod"', fake(ALNUM, 20)),
    _p("postgres_url", 'DATABASE_URL="postgres://app:{S}@10.0.0.5:5432/shop"', fake(ALNUM, 18)),
    _p("postgresql_url", 'database_url = "postgresql://svc:{S}@pg.prod/svc"', fake(ALNUM, 16)),
    _p("mysql_url", 'url: "mysql://root:{S}@mysql.local:3306/legacy"', fake(ALNUM, 12)),
    _p("redis_url", 'redis_url: "redis://default:{S}@cache.internal:6379"', fake(ALNUM, 24)),
    _p("git_dep_https", '{:private_dep, git: "https://deploy:{S}@github.com/acme/private_dep.git"}', fake(ALNUM, 32)),
    _p("amqp_url", 'url: "amqp://broker:{S}@rabbit.internal/vhost"', fake(ALNUM, 20)),
    # exact formats
    _p("jwt", 'headers = [{"x-token", "{S}"}]', _JWT),
    _p("jwt_bare", "# curl -H 'Cookie: session={S}'", _JWT),
    _p(
        "slack_webhook",
        'config :app, webhook: "{S}"',
        "https://" + "hooks.slack.com/services/T" + fake(UPPER, 8) + "/B" + fake(UPPER, 10) + "/" + fake(ALNUM, 24),
    ),
    _p(
        "github_fine_grained",
        'Tentacat.Client.new(%{access_token: "{S}"})',
        "github_" + "pat_" + fake(ALNUM, 22) + "_" + fake(ALNUM, 59),
    ),
    _p("github_classic", "git clone https://{S}@github.com/acme/app.git", "gh" + "p_" + fake(ALNUM, 36)),
    _p("github_app_token", "GITHUB_TOKEN: {S}", "gh" + "s_" + fake(ALNUM, 36)),
    _p("stripe_live", "Stripe.API.request(key: {S})", "sk_" + "live_" + fake(ALNUM, 24)),
    _p(
        "stripe_restricted",
        'config :stripity_stripe, api_key: System.get_env("X") || {S}',
        "rk_" + "live_" + fake(ALNUM, 24),
    ),
    _p("stripe_test", "# stripe listen --api-key {S}", "sk_" + "test_" + fake(ALNUM, 24)),
    _p("openai", 'config :openai, api_key: "{S}"', "sk" + "-proj-" + fake(URLSAFE, 48)),
    _p("google_api_key", 'maps_key = "{S}"', "AI" + "za" + fake(URLSAFE, 35)),
    _p("gcp_service_account", '{"type": "service_account", "private_key": "{S}"}', _GCP_KEY),
    _p("slack_bot_token", 'slack_token: "{S}"', "xo" + "xb-" + fake(string.digits, 12) + "-" + fake(ALNUM, 24)),
    _p("aws_access_key", 'aws_access_key_id: "{S}"', "AK" + "IA" + fake(UPPER, 16)),
    # bearer tokens written after the word, as HTTP headers are
    _p("bearer_header_string", 'headers: ["Authorization: Bearer {S}"]', fake(URLSAFE, 43)),
    _p("bearer_curl", "# curl -H 'authorization: bearer {S}' https://api.internal/v1", fake(HEX, 40)),
    _p("req_bearer_auth", 'Req.get!(url, auth: {:bearer, "{S}"})', fake(ALNUM, 32)),
]

LOOK_ALIKES: list[Case] = [
    Case("get_env", 'secret_key_base: System.get_env("SECRET_KEY_BASE")'),
    Case("fetch_env", 'api_key: System.fetch_env!("API_KEY")'),
    Case("fetch_env_bang_assign", 'token = System.fetch_env!("GITHUB_TOKEN")'),
    Case("get_env_default_words", 'System.get_env("API_KEY", "dev-api-key")'),
    Case("changeme", 'password: "changeme"'),
    Case("your_key_here", 'api_key: "your-api-key-here"'),
    Case("eex", 'secret_key_base: "<%= @secret_key_base %>"'),
    Case("eex_tight", 'signing_salt: "<%=signing_salt%>"'),
    Case("env_interpolation", 'token: "${GITHUB_TOKEN}"'),
    Case("elixir_interpolation", 'put_req_header(conn, "authorization", "Bearer #{token}")'),
    Case("xxx", 'api_key: "xxxxxxxxxxxxxxxxxxxx"'),
    Case("stars", 'password: "**********"'),
    Case("dev_password", 'password: "postgres",'),
    Case("ecto_dev_url", 'url: "ecto://postgres:postgres@localhost/app_dev"'),
    Case("ecto_env_url", 'url: "ecto://app:${DB_PASSWORD}@db/app"'),
    Case("url_no_password", 'url: "postgres://localhost:5432/app_test"'),
    Case("http_port", 'base_url: "http://localhost:4000/api/v1/tokens"'),
    Case(
        "mix_lock",
        '  "plug_crypto": {:hex, :plug_crypto, "2.1.0", "f44309c2b06d249c27c8d3f65cfe08158ade08418cf540fd4f72d4d6863abb7b", '
        '[:mix], [], "hexpm", "6b5fc7fe2eeaa7bc1ffe9e1f4d8c7a0cd0c6ad8d3e8fdbf3d0b5e6e5c0a9f1d2"},',
    ),
    Case(
        "mix_lock_auth",
        '  "ueberauth": {:hex, :ueberauth, "0.10.8", "ba78fbcbb27d811a6cd06ad851793aaf7d27c3b30c9e95349c2c362b344cd8f0", '
        '[:mix], [{:plug, "~> 1.5", [hex: :plug, repo: "hexpm", optional: false]}], "hexpm", '
        '"f2d3172e52821375bccb8460e5fa5cb91cfd60b19b636b6e57e9759b6f8c10c1"},',
    ),
    Case("uuid_key", 'api_key_id: "550e8400-e29b-41d4-a716-446655440000"'),
    Case("uuid_bare", 'id = "6fa459ea-ee8a-3ca4-894e-db77e160355e"'),
    Case("module_name", 'token_module: "MyApp.Accounts.UserToken.Generator"'),
    Case("module_name_key", 'key_provider: "Elixir.MyApp.Auth.KeyProvider"'),
    Case("token_variable", "token: token,"),
    Case("token_variable_call", "api_key: api_key(config),"),
    Case("typespec", "@type token :: String.t() | nil"),
    Case("typespec_field", "@spec verify_token(token :: binary()) :: {:ok, map()}"),
    Case("key_path", 'keyfile: "priv/ssl/selfsigned_key.pem"'),
    Case("cert_path", 'certfile: "/etc/letsencrypt/live/example/fullchain.pem"'),
    Case("env_var_name", 'api_key_env: "OPENAI_API_KEY"'),
    Case("cookie_key", 'key: "_my_app_key"'),
    Case("cache_key", 'cache_key: "users:list:active"'),
    Case("primary_key", "@primary_key {:id, :binary_id, autogenerate: true}"),
    Case("foreign_key", 'belongs_to :author, User, foreign_key: "author_uuid_ref"'),
    Case("token_type", 'token_type: "Bearer"'),
    Case("grant_type", 'grant_type: "client_credentials"'),
    Case("token_url", 'token_url: "https://oauth2.googleapis.com/token"'),
    Case("auth_header_name", 'auth_header: "x-api-key"'),
    Case("password_hash_field", "field :password_hash, :string, redact: true"),
    Case("comparison", 'if token == "expected_token_value" do'),
    Case("doc_prose", "  The API key is read from the environment at boot, never from source."),
    Case("author", 'author: "josevalim"'),
    Case("hex_hash_in_doc", "sha256: 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
    Case("secret_name", 'secret_name: "stripe-webhook-secret"'),
    Case("pk_publishable", 'publishable_key: "pk_test_placeholder_for_docs"'),
    Case("example_email", 'config :app, from: "noreply@example.com"'),
    Case("redacted", 'password: "[REDACTED]"'),
    Case("nil_password", "password: nil"),
    Case("iex_example", 'iex> MyApp.Auth.sign_token("user-42")'),
    # found scanning real Elixir projects (Phoenix, Elixir's own URI tests)
    Case("attribute_prefix", '@auth_token_prefix "base64url.bearer.phx."'),
    Case("query_fragment", 'csrf_token_query = "&_csrf_token=" <> URI.encode_www_form(body)'),
    Case("env_placeholder_words", "$ export SECRET_KEY_BASE=REALLY_LONG_SECRET"),
    Case("uri_test_userinfo", 'assert URI.parse("http://foo:bar@localhost:4444") == expected_uri'),
    Case("proxy_env", 'System.put_env("HTTP_PROXY", "http://my:proxy@localhost:3128")'),
    Case("keyword_function", 'Keyword.get(opts, :api_key, "default-dev-key")'),
    Case("bearer_concat", 'put_req_header(conn, "authorization", "Bearer " <> token)'),
    Case("bearer_doc_placeholder", "curl -H 'Authorization: Bearer YOUR_ACCESS_TOKEN' https://api.example.com"),
    Case("bearer_shell_var", 'curl -H "Authorization: Bearer ${API_TOKEN}" "$URL"'),
    Case("bearer_prose", "The plug reads the Bearer authentication scheme of RFC 6750."),
    Case("bearer_module", "plug MyApp.Guardian.Pipeline, module: MyApp.BearerTokenStrategy"),
    Case("req_bearer_variable", "Req.get!(url, auth: {:bearer, token})"),
]
