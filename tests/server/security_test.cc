// security_test.cc: who may call fanprobe-server, and how much -- TLS and
// mutual TLS with certificates re-read from their files, bearer tokens
// checked before any probe runs, health on its own plaintext port, and the
// limits past which a client gets RESOURCE_EXHAUSTED while others go on:
// batches per server and per client, request bytes, ping rate, connection
// age.  In-process servers (tests/support/test_server.h) with certificates
// made at run time (tests/support/test_certs.h).

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "tests/support/batches.h"
#include "tests/support/json_lines.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::ParseJsonLines;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TestServer;
using ::fanprobe::testing::WaitUntil;
using ::fanprobe::testing::WriteFileAtomically;
using ::testing::HasSubstr;

using Health = ::grpc::health::v1::Health;
using HealthCheckRequest = ::grpc::health::v1::HealthCheckRequest;
using HealthCheckResponse = ::grpc::health::v1::HealthCheckResponse;

// A client channel to `address` over TLS trusting `ca_pem`, presenting
// `client` if it has a certificate.
std::shared_ptr<grpc::Channel> TlsChannel(
    const std::string& address, const std::string& ca_pem,
    const testing::KeyAndCert& client = {}) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  ssl.pem_private_key = client.key_pem;
  ssl.pem_cert_chain = client.cert_pem;
  grpc::ChannelArguments arguments;
  arguments.SetSslTargetNameOverride("localhost");
  // Each channel its own connection, so a new handshake sees new files.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl),
                                   arguments);
}

// Runs a one-probe ProbeBatch on `channel`, with `token` as bearer token
// if not empty.
grpc::Status ProbeOnce(const std::shared_ptr<grpc::Channel>& channel,
                       const std::string& url, const std::string& token = "",
                       v1::ProbeBatchResponse* response = nullptr) {
  auto stub = v1::Prober::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  if (!token.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }
  v1::ProbeBatchResponse ignored;
  return stub->ProbeBatch(&context, BatchRequest({url}),
                          response != nullptr ? response : &ignored);
}

HealthCheckResponse::ServingStatus HealthOf(
    const std::shared_ptr<grpc::Channel>& channel, grpc::Status* status) {
  auto stub = Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kPatience));
  HealthCheckResponse response;
  *status = stub->Check(&context, HealthCheckRequest(), &response);
  return response.status();
}

// Polls `condition` every 50 ms (each poll may be a TLS handshake) until it
// holds or kPatience passes.
bool Eventually(const std::function<bool()>& condition) {
  return WaitUntil(condition, kPatience, absl::Milliseconds(50));
}

// The lines of `log` that are about `event`.
std::vector<std::string> LinesOf(const std::vector<std::string>& log,
                                 absl::string_view event) {
  const std::string key = absl::StrCat(R"("event":")", event, R"(")");
  std::vector<std::string> lines;
  for (const std::string& line : log) {
    if (absl::StrContains(line, key)) lines.push_back(line);
  }
  return lines;
}

std::shared_ptr<grpc::Channel> Plaintext(const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   arguments);
}

class SecurityTest : public ::testing::Test {
 protected:
  // Writes the server's certificate and key (and the client CA) into dir_
  // and returns options serving TLS from them.
  server::ServerOptions TlsOptions(const TestCa& ca, bool mutual) {
    const testing::KeyAndCert server = ca.Issue("localhost", {.server = true});
    WriteFileAtomically(dir_.File("server.pem"), server.cert_pem);
    WriteFileAtomically(dir_.File("server.key"), server.key_pem);
    server::ServerOptions options;
    options.security.tls_cert_file = dir_.File("server.pem");
    options.security.tls_key_file = dir_.File("server.key");
    if (mutual) {
      WriteFileAtomically(dir_.File("client_ca.pem"), ca.cert_pem());
      options.security.client_ca_file = dir_.File("client_ca.pem");
    }
    options.security.reload_interval = absl::Seconds(1);
    return options;
  }

  server::ServerOptions TokenOptions(const std::string& tokens) {
    WriteFileAtomically(dir_.File("tokens"), tokens);
    server::ServerOptions options;
    options.security.auth_token_file = dir_.File("tokens");
    options.security.reload_interval = absl::Milliseconds(100);
    return options;
  }

  TempDir dir_;
  TargetServer target_;
};

TEST_F(SecurityTest, TlsServesTlsClientsAndRefusesPlaintext) {
  TestCa ca("fanprobe test CA");
  TestServer server(TlsOptions(ca, /*mutual=*/false));
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      ProbeOnce(TlsChannel(server.address(), ca.cert_pem()),
                target_.url("/status/200"), "", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_OK);

  EXPECT_EQ(ProbeOnce(Plaintext(server.address()), target_.url("/status/200"))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A client that trusts another CA does not get through either.
  TestCa other("another CA");
  EXPECT_EQ(ProbeOnce(TlsChannel(server.address(), other.cert_pem()),
                      target_.url("/status/200"))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(target_.Stats().http.requests, 1);
}

TEST_F(SecurityTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  TestCa ca("fanprobe test CA");
  TestServer server(TlsOptions(ca, /*mutual=*/true));
  const std::string url = target_.url("/status/200");

  EXPECT_TRUE(ProbeOnce(TlsChannel(server.address(), ca.cert_pem(),
                                   ca.Issue("client-a", {.server = false})),
                        url)
                  .ok());
  // No certificate, or one from a CA the server does not trust: the
  // handshake fails, no call is made.
  EXPECT_EQ(
      ProbeOnce(TlsChannel(server.address(), ca.cert_pem()), url).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  TestCa rogue("rogue CA");
  EXPECT_EQ(ProbeOnce(TlsChannel(server.address(), ca.cert_pem(),
                                 rogue.Issue("client-a", {.server = false})),
                      url)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(target_.Stats().http.requests, 1);
}

TEST_F(SecurityTest, RenewedCertificateFilesAreServedWithoutARestart) {
  TestCa old_ca("old CA");
  TestServer server(TlsOptions(old_ca, /*mutual=*/false));
  const std::string url = target_.url("/status/200");
  ASSERT_TRUE(
      ProbeOnce(TlsChannel(server.address(), old_ca.cert_pem()), url).ok());

  // The renewal: a certificate from a new CA, the key first, as a careless
  // renewal would (for a moment the two do not match; gRPC skips that).
  TestCa new_ca("new CA");
  const testing::KeyAndCert renewed =
      new_ca.Issue("localhost", {.server = true});
  WriteFileAtomically(dir_.File("server.key"), renewed.key_pem);
  WriteFileAtomically(dir_.File("server.pem"), renewed.cert_pem);
  EXPECT_TRUE(WaitUntil([&] {
    return ProbeOnce(TlsChannel(server.address(), new_ca.cert_pem()), url).ok();
  }));
  EXPECT_EQ(ProbeOnce(TlsChannel(server.address(), old_ca.cert_pem()), url)
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, BadCertificateFilesFailAtStartNamingTheFlag) {
  TestCa ca("fanprobe test CA");
  server::ServerOptions options = TlsOptions(ca, /*mutual=*/true);
  options.grpc_address = "127.0.0.1:0";

  server::ServerOptions missing = options;
  missing.security.tls_cert_file = dir_.File("nonexistent.pem");
  absl::StatusOr<std::unique_ptr<server::Server>> server =
      server::Server::Start(missing);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("--tls_cert="));

  // A key from another certificate.
  server::ServerOptions mismatched = options;
  WriteFileAtomically(dir_.File("other.key"),
                      ca.Issue("other", {.server = true}).key_pem);
  mismatched.security.tls_key_file = dir_.File("other.key");
  server = server::Server::Start(mismatched);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("does not match"));

  server::ServerOptions not_pem = options;
  WriteFileAtomically(dir_.File("garbage.pem"), "not a certificate\n");
  not_pem.security.client_ca_file = dir_.File("garbage.pem");
  server = server::Server::Start(not_pem);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("--client_ca="));

  server::ServerOptions ca_without_tls;
  ca_without_tls.grpc_address = "127.0.0.1:0";
  ca_without_tls.security.client_ca_file = options.security.client_ca_file;
  server = server::Server::Start(ca_without_tls);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SecurityTest, TokenIsCheckedBeforeAnyProbeRuns) {
  TestServer server(TokenOptions("# clients\ns3cret-one\n\ns3cret-two\n"));
  const std::string url = target_.url("/status/200");

  const grpc::Status missing = ProbeOnce(server.channel(), url);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("authorization"));
  EXPECT_EQ(ProbeOnce(server.channel(), url, "s3cret-on").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ProbeOnce(server.channel(), url, "s3cret-one2").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Streams too: refused before the batch starts.
  {
    auto stub = v1::Prober::NewStub(server.channel());
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer wrong");
    auto reader = stub->StreamProbes(&context, BatchRequest({url}));
    v1::ProbeEvent event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(target_.Stats().http.requests, 0);
  EXPECT_EQ(server.server().service().Stats().batches_started, 0u);

  EXPECT_TRUE(ProbeOnce(server.channel(), url, "s3cret-one").ok());
  EXPECT_TRUE(ProbeOnce(server.channel(), url, "s3cret-two").ok());
  EXPECT_EQ(target_.Stats().http.requests, 2);

  // Health needs no token (kubelets cannot send one).
  grpc::Status health_status;
  EXPECT_EQ(HealthOf(server.channel(), &health_status),
            HealthCheckResponse::SERVING);
  EXPECT_TRUE(health_status.ok()) << health_status.error_message();
}

TEST_F(SecurityTest, RotatedTokenFileTakesEffectWithoutARestart) {
  TestServer server(TokenOptions("old-token\n"));
  const std::string url = target_.url("/status/200");
  ASSERT_TRUE(ProbeOnce(server.channel(), url, "old-token").ok());

  WriteFileAtomically(dir_.File("tokens"), "new-token\n");
  EXPECT_TRUE(Eventually(
      [&] { return ProbeOnce(server.channel(), url, "new-token").ok(); }));
  EXPECT_EQ(ProbeOnce(server.channel(), url, "old-token").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // An emptied file (a botched rotation) keeps the tokens in use, and the
  // log says why.
  WriteFileAtomically(dir_.File("tokens"), "");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(ProbeOnce(server.channel(), url, "new-token").ok());
  EXPECT_THAT(LinesOf(server.log().Lines(), "auth_token_file_ignored"),
              ::testing::ElementsAre(HasSubstr("no token in the file")));
}

TEST_F(SecurityTest, AnIgnoredTokenFileIsLoggedAsJsonWhateverItsName) {
  // A quote and a non-ASCII letter: C escaping made "tok\'\303\251" of
  // them, which no JSON parser reads.
  const std::string path = dir_.File("tok'\xc3\xa9");
  WriteFileAtomically(path, "t0ken\n");
  server::ServerOptions options;
  options.security.auth_token_file = path;
  options.security.reload_interval = absl::Milliseconds(100);
  TestServer server(options);
  const std::string url = target_.url("/status/200");
  ASSERT_TRUE(ProbeOnce(server.channel(), url, "t0ken").ok());

  WriteFileAtomically(path, "");
  // A call after the reload interval re-reads the file, keeps the token in
  // use and logs why.
  std::vector<std::string> ignored;
  ASSERT_TRUE(Eventually([&] {
    EXPECT_TRUE(ProbeOnce(server.channel(), url, "t0ken").ok());
    ignored = LinesOf(server.log().Lines(), "auth_token_file_ignored");
    return !ignored.empty();
  }));
  absl::StatusOr<std::vector<std::string>> parsed = ParseJsonLines(ignored);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Read back with non-ASCII as \uXXXX: the name arrived intact.
  EXPECT_THAT((*parsed)[0],
              HasSubstr(absl::StrCat(R"("error":"--auth_token_file=)",
                                     dir_.path(), R"(/tok'\u00e9: no token)")));
}

TEST_F(SecurityTest, HealthPortAnswersWithoutCredentialsAndServesNothingElse) {
  TestCa ca("fanprobe test CA");
  server::ServerOptions options = TlsOptions(ca, /*mutual=*/true);
  WriteFileAtomically(dir_.File("tokens"), "t0ken\n");
  options.security.auth_token_file = dir_.File("tokens");
  options.health_address = "127.0.0.1:0";
  options.shutdown_grace = absl::Seconds(2);
  TestServer server(options);
  ASSERT_FALSE(server.server().health_address().empty());
  auto health_channel = Plaintext(server.server().health_address());

  grpc::Status status;
  EXPECT_EQ(HealthOf(health_channel, &status), HealthCheckResponse::SERVING);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // The main port still wants a client certificate, even for health.
  HealthOf(Plaintext(server.address()), &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The health port runs no batches.
  EXPECT_EQ(ProbeOnce(health_channel, target_.url("/status/200"), "t0ken")
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  // It follows the drain: NOT_SERVING while a batch finishes.
  auto client = TlsChannel(server.address(), ca.cert_pem(),
                           ca.Issue("client", {.server = false}));
  auto stub = v1::Prober::NewStub(client);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer t0ken");
  auto reader =
      stub->StreamProbes(&context, BatchRequest({target_.url("/delay/500")}));
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.http.in_flight == 1; }, kPatience));
  std::thread drain([&] { server.server().Shutdown(); });
  EXPECT_TRUE(WaitUntil([&] {
    grpc::Status s;
    return HealthOf(health_channel, &s) == HealthCheckResponse::NOT_SERVING;
  }));
  v1::ProbeEvent event;
  while (reader->Read(&event)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
  drain.join();
}

// A stream of probes to /hang, held open until cancelled.
class HangingStream {
 public:
  HangingStream(const std::shared_ptr<grpc::Channel>& channel,
                const std::string& url, const std::string& token)
      : stub_(v1::Prober::NewStub(channel)) {
    if (!token.empty()) {
      context_.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    }
    reader_ = stub_->StreamProbes(&context_, BatchRequest({url}));
  }
  ~HangingStream() {
    context_.TryCancel();
    v1::ProbeEvent event;
    while (reader_->Read(&event)) {
    }
    reader_->Finish().IgnoreError();
  }

 private:
  std::unique_ptr<v1::Prober::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> reader_;
};

TEST_F(SecurityTest, PerClientBatchLimitLeavesOtherClientsAlone) {
  server::ServerOptions options = TokenOptions("alice\nbob\n");
  options.service.max_batches_per_client = 2;
  TestServer server(options);
  const std::string hang = target_.raw_url("/hang");
  const std::string ok = target_.url("/status/200");

  std::vector<std::unique_ptr<HangingStream>> alice;
  for (int i = 0; i < 2; ++i) {
    alice.push_back(
        std::make_unique<HangingStream>(server.channel(), hang, "alice"));
  }
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 2; }, kPatience));
  const grpc::Status third = ProbeOnce(server.channel(), ok, "alice");
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.error_message(), HasSubstr("per client"));
  // Bob is another client: unaffected.
  EXPECT_TRUE(ProbeOnce(server.channel(), ok, "bob").ok());
  // Once one of Alice's batches ends she may start another.
  alice.pop_back();
  EXPECT_TRUE(
      WaitUntil([&] { return ProbeOnce(server.channel(), ok, "alice").ok(); }));
}

TEST_F(SecurityTest, PerClientLimitKeysOnTheCertificateSubjectUnderMutualTls) {
  TestCa ca("fanprobe test CA");
  server::ServerOptions options = TlsOptions(ca, /*mutual=*/true);
  options.service.max_batches_per_client = 1;
  TestServer server(options);
  auto carol = TlsChannel(server.address(), ca.cert_pem(),
                          ca.Issue("carol", {.server = false}));
  auto dave = TlsChannel(server.address(), ca.cert_pem(),
                         ca.Issue("dave", {.server = false}));
  HangingStream running(carol, target_.raw_url("/hang"), "");
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  EXPECT_EQ(ProbeOnce(carol, target_.url("/status/200")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(ProbeOnce(dave, target_.url("/status/200")).ok());
}

TEST_F(SecurityTest, ServerBatchLimitIsResourceExhausted) {
  server::ServerOptions options;
  options.service.max_batches = 1;
  TestServer server(options);
  HangingStream running(server.channel(), target_.raw_url("/hang"), "");
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  const grpc::Status refused =
      ProbeOnce(server.channel(), target_.url("/status/200"));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max_batches"));
}

TEST_F(SecurityTest, OversizedRequestIsResourceExhaustedAndHarmless) {
  server::ServerOptions options;
  options.connection.max_request_bytes = 64 * 1024;
  TestServer server(options);
  v1::ProbeBatchRequest request;
  for (int i = 0; i < 2000; ++i) {
    request.add_targets()->set_url(
        target_.url(absl::StrCat("/status/200?", i)));
  }
  ASSERT_GT(request.ByteSizeLong(), 64u * 1024);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      server.stub().ProbeBatch(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(target_.Stats().http.requests, 0);
  // The connection and the server carry on.
  EXPECT_TRUE(ProbeOnce(server.channel(), target_.url("/status/200")).ok());
}

TEST_F(SecurityTest, ClientPingingTooOftenIsDisconnected) {
  TestServer server;  // the defaults: pings at most every 10 s
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 50);
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto channel = server.NewChannel(arguments);
  auto stub = v1::Prober::NewStub(channel);
  grpc::ClientContext context;
  auto reader =
      stub->StreamProbes(&context, BatchRequest({target_.raw_url("/hang")}));
  v1::ProbeEvent event;
  EXPECT_FALSE(reader->Read(&event));
  // The server's GOAWAY (too_many_pings) ends the call; its batch is
  // cancelled.
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
}

TEST_F(SecurityTest, MaxConnectionAgeMovesClientsToANewConnection) {
  server::ServerOptions options;
  options.connection.max_connection_age = absl::Milliseconds(300);
  options.connection.max_connection_age_grace = absl::Seconds(5);
  TestServer server(options);
  // A call running when the age is reached finishes on the old connection.
  grpc::ClientContext context;
  auto reader = server.stub().StreamProbes(
      &context, BatchRequest({target_.url("/delay/600")}));
  v1::ProbeEvent event;
  int events = 0;
  while (reader->Read(&event)) ++events;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(events, 2);
  // The next call comes over a new connection: another client port.
  ASSERT_TRUE(ProbeOnce(server.channel(), target_.url("/status/200")).ok());
  ASSERT_TRUE(server.log().WaitForLines(2));
  const std::vector<std::string> lines = server.log().Lines();
  const auto peer = [](const std::string& line) {
    const size_t at = line.find(R"("peer":")");
    return line.substr(at, line.find('"', at + 8) - at);
  };
  EXPECT_NE(peer(lines[0]), peer(lines[1]));
}

TEST(ClientIdentityTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(server::ConstantTimeEquals("", ""));
  EXPECT_TRUE(server::ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(server::ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(server::ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(server::ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(server::ConstantTimeEquals("", "a"));
  EXPECT_FALSE(server::ConstantTimeEquals(std::string("a\0b", 3), "a"));
}

}  // namespace
}  // namespace fanprobe
