// server_test.cc: fanprobe-server as clients and operators meet it -- the
// reflection a grpcurl-style tool relies on, health and draining shutdown
// (in-process), and SIGTERM/SIGINT draining of the real binary run as a
// child process, with its JSON-line log.

#include <signal.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "tests/support/batches.h"
#include "tests/support/json_lines.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::ExpectSummary;
using ::fanprobe::testing::Indices;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::ParseJsonLines;
using ::fanprobe::testing::ReadStream;
using ::fanprobe::testing::StreamOutcome;
using ::fanprobe::testing::Subprocess;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TestServer;
using ::fanprobe::testing::WaitUntil;
using ::google::protobuf::Descriptor;
using ::google::protobuf::DynamicMessageFactory;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::MatchesRegex;

using Health = ::grpc::health::v1::Health;
using HealthCheckRequest = ::grpc::health::v1::HealthCheckRequest;
using HealthCheckResponse = ::grpc::health::v1::HealthCheckResponse;
using ReflectionV1 = ::grpc::reflection::v1::ServerReflection;
using ReflectionV1Request = ::grpc::reflection::v1::ServerReflectionRequest;
using ReflectionV1Response = ::grpc::reflection::v1::ServerReflectionResponse;

// gRPC's reflection protocol, spoken with dynamic messages:
// libgrpc++_reflection registers its descriptors in the generated pool but
// Debian installs no header for them.
class ReflectionClient {
 public:
  explicit ReflectionClient(const std::shared_ptr<grpc::Channel>& channel)
      : pool_(*google::protobuf::DescriptorPool::generated_pool()),
        request_type_(pool_.FindMessageTypeByName(
            "grpc.reflection.v1alpha.ServerReflectionRequest")),
        response_type_(pool_.FindMessageTypeByName(
            "grpc.reflection.v1alpha.ServerReflectionResponse")) {
    if (request_type_ == nullptr || response_type_ == nullptr) return;
    stream_.reset(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                            grpc::ByteBuffer>::
                      Create(channel.get(),
                             grpc::internal::RpcMethod(
                                 "/grpc.reflection.v1alpha.ServerReflection/"
                                 "ServerReflectionInfo",
                                 grpc::internal::RpcMethod::BIDI_STREAMING),
                             &context_));
  }

  ~ReflectionClient() {
    if (stream_ != nullptr) {
      stream_->WritesDone();
      stream_->Finish().IgnoreError();
    }
  }

  bool ok() const { return stream_ != nullptr; }

  // Sends a request with the string field `field` set to `value`; returns
  // the reply.
  std::unique_ptr<Message> Ask(absl::string_view field,
                               absl::string_view value) {
    std::unique_ptr<Message> request(
        factory_.GetPrototype(request_type_)->New());
    request->GetReflection()->SetString(
        request.get(), request_type_->FindFieldByName(std::string(field)),
        std::string(value));
    const std::string bytes = request->SerializeAsString();
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    if (!stream_->Write(buffer)) return nullptr;
    grpc::ByteBuffer reply;
    if (!stream_->Read(&reply)) return nullptr;
    std::vector<grpc::Slice> slices;
    if (!reply.Dump(&slices).ok()) return nullptr;
    std::string data;
    for (const grpc::Slice& s : slices) {
      data.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    std::unique_ptr<Message> response(
        factory_.GetPrototype(response_type_)->New());
    if (!response->ParseFromString(data)) return nullptr;
    return response;
  }

 private:
  const google::protobuf::DescriptorPool& pool_;
  const Descriptor* request_type_;
  const Descriptor* response_type_;
  DynamicMessageFactory factory_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream_;
};

const Message& SubMessage(const Message& message, absl::string_view field) {
  return message.GetReflection()->GetMessage(
      message, message.GetDescriptor()->FindFieldByName(std::string(field)));
}

TEST(ReflectionTest, ListsTheServicesAndServesTheContract) {
  TestServer server;
  ReflectionClient reflection(server.channel());
  ASSERT_TRUE(reflection.ok());

  std::unique_ptr<Message> listed = reflection.Ask("list_services", "");
  ASSERT_NE(listed, nullptr);
  const Message& list = SubMessage(*listed, "list_services_response");
  const FieldDescriptor* services =
      list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  for (int i = 0; i < list.GetReflection()->FieldSize(list, services); ++i) {
    const Message& service =
        list.GetReflection()->GetRepeatedMessage(list, services, i);
    names.push_back(service.GetReflection()->GetString(
        service, service.GetDescriptor()->FindFieldByName("name")));
  }
  EXPECT_THAT(names,
              IsSupersetOf({"fanprobe.v1.Prober", "grpc.health.v1.Health"}));

  std::unique_ptr<Message> described =
      reflection.Ask("file_containing_symbol", "fanprobe.v1.Prober");
  ASSERT_NE(described, nullptr);
  const Message& files = SubMessage(*described, "file_descriptor_response");
  const FieldDescriptor* protos =
      files.GetDescriptor()->FindFieldByName("file_descriptor_proto");
  ASSERT_GE(files.GetReflection()->FieldSize(files, protos), 1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(
      files.GetReflection()->GetRepeatedString(files, protos, 0)));
  EXPECT_EQ(file.name(), "fanprobe/v1/prober.proto");
  EXPECT_EQ(file.package(), "fanprobe.v1");
  ASSERT_EQ(file.service_size(), 1);
  std::vector<std::string> methods;
  for (const auto& method : file.service(0).method()) {
    methods.push_back(method.name());
  }
  EXPECT_THAT(methods, IsSupersetOf({"StreamProbes", "ProbeBatch"}));
}

// Reflection v1, which the server serves itself, spoken with the stubs
// generated from Debian's grpc/reflection/v1/reflection.proto.
class ReflectionV1Client {
 public:
  explicit ReflectionV1Client(const std::shared_ptr<grpc::Channel>& channel)
      : stub_(ReflectionV1::NewStub(channel)),
        stream_(stub_->ServerReflectionInfo(&context_)) {}
  ~ReflectionV1Client() {
    stream_->WritesDone();
    stream_->Finish().IgnoreError();
  }

  // The reply to `request`, on the one stream.
  std::optional<ReflectionV1Response> Ask(const ReflectionV1Request& request) {
    ReflectionV1Response response;
    if (!stream_->Write(request) || !stream_->Read(&response)) {
      return std::nullopt;
    }
    return response;
  }

  std::vector<std::string> ListServices() {
    ReflectionV1Request request;
    request.set_list_services("");
    std::optional<ReflectionV1Response> response = Ask(request);
    std::vector<std::string> names;
    if (!response) return names;
    for (const auto& service : response->list_services_response().service()) {
      names.push_back(service.name());
    }
    return names;
  }

 private:
  std::unique_ptr<ReflectionV1::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<ReflectionV1Request, ReflectionV1Response>>
      stream_;
};

TEST(ReflectionTest, V1ListsTheServicesAndServesTheContractWithItsComments) {
  TestServer server;
  ReflectionV1Client reflection(server.channel());
  EXPECT_THAT(reflection.ListServices(),
              ::testing::UnorderedElementsAre(
                  "fanprobe.v1.Prober", "grpc.health.v1.Health",
                  "grpc.reflection.v1.ServerReflection",
                  "grpc.reflection.v1alpha.ServerReflection"));

  // A symbol's file comes with the files it imports, and with the
  // comments that say what each field means.
  ReflectionV1Request request;
  request.set_file_containing_symbol("fanprobe.v1.ProbeStreamRequest");
  std::optional<ReflectionV1Response> response = reflection.Ask(request);
  ASSERT_TRUE(response);
  ASSERT_TRUE(response->has_file_descriptor_response())
      << response->DebugString();
  std::vector<std::string> names;
  google::protobuf::FileDescriptorProto prober;
  for (const std::string& bytes :
       response->file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    names.push_back(file.name());
    if (file.name() == "fanprobe/v1/prober.proto") prober = file;
  }
  EXPECT_THAT(names,
              ::testing::UnorderedElementsAre(
                  "fanprobe/v1/prober.proto", "google/protobuf/duration.proto",
                  "google/protobuf/timestamp.proto"));
  EXPECT_EQ(names.front(), "fanprobe/v1/prober.proto");
  std::vector<std::string> comments;
  for (const auto& location : prober.source_code_info().location()) {
    comments.push_back(location.leading_comments());
  }
  EXPECT_THAT(comments, Contains(HasSubstr("The first message only, and "
                                           "required there")));
  EXPECT_EQ(response->original_request().file_containing_symbol(),
            "fanprobe.v1.ProbeStreamRequest");

  // By file name, and a miss, on the same stream.
  request.set_file_by_filename("grpc/health/v1/health.proto");
  response = reflection.Ask(request);
  ASSERT_TRUE(response);
  ASSERT_EQ(response->file_descriptor_response().file_descriptor_proto_size(),
            1);
  request.set_file_containing_symbol("fanprobe.v1.NoSuchThing");
  response = reflection.Ask(request);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->error_response().error_code(),
            static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(response->error_response().error_message(),
            "no symbol fanprobe.v1.NoSuchThing");
  request.set_all_extension_numbers_of_type("fanprobe.v1.ProbeOptions");
  response = reflection.Ask(request);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->all_extension_numbers_response().base_type_name(),
            "fanprobe.v1.ProbeOptions");
  EXPECT_EQ(response->all_extension_numbers_response().extension_number_size(),
            0);
}

TEST(ReflectionTest, TheHealthPortListsOnlyWhatItServes) {
  server::ServerOptions options;
  options.health_address = "127.0.0.1:0";
  TestServer server(options);
  ReflectionV1Client reflection(grpc::CreateChannel(
      server.server().health_address(), grpc::InsecureChannelCredentials()));
  EXPECT_THAT(
      reflection.ListServices(),
      ::testing::UnorderedElementsAre(
          "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
          "grpc.reflection.v1alpha.ServerReflection"));
}

// The server in-process: what it adds around the Prober service (health,
// draining shutdown).
class ServerTest : public ::testing::Test {
 protected:
  TargetServer target_;
};

TEST_F(ServerTest, HealthAnswersServing) {
  TestServer server;
  auto health = Health::NewStub(server.channel());
  for (const std::string service : {"", "fanprobe.v1.Prober"}) {
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(ServerTest, ShutdownDrainsRunningBatchesAndRefusesNewOnes) {
  server::ServerOptions options;
  options.shutdown_grace = absl::Seconds(5);
  TestServer server(options);
  auto health = Health::NewStub(server.channel());
  grpc::ClientContext watch_context;
  auto watch = health->Watch(&watch_context, HealthCheckRequest());
  HealthCheckResponse health_status;
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), HealthCheckResponse::SERVING);

  grpc::ClientContext running;
  auto reader = server.stub().StreamProbes(
      &running, BatchRequest({target_.url("/delay/500")}));
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.http.in_flight == 1; }, kPatience));

  std::thread shutdown([&] { server.server().Shutdown(); });
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), HealthCheckResponse::NOT_SERVING);
  grpc::ClientContext refused;
  v1::ProbeBatchResponse response;
  EXPECT_EQ(
      server.stub()
          .ProbeBatch(&refused, BatchRequest({target_.url("/status/200")}),
                      &response)
          .error_code(),
      grpc::StatusCode::UNAVAILABLE);

  StreamOutcome outcome = ReadStream(*reader);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0], {.reason = v1::END_REASON_ALL_COMPLETED});
  shutdown.join();
  watch_context.TryCancel();
}

TEST_F(ServerTest, ShutdownEndsBatchesStillRunningAfterTheGrace) {
  server::ServerOptions options;
  options.shutdown_grace = absl::Milliseconds(500);
  TestServer server(options);
  grpc::ClientContext context;
  auto reader = server.stub().StreamProbes(
      &context, BatchRequest({target_.raw_url("/hang")}));
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));

  const absl::Time start = absl::Now();
  server.server().Shutdown();
  // The 500 ms grace, not the probe's 10 s timeout, with a margin for a
  // loaded machine.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // The contract: a batch ended by shutdown ends CANCELLED with its summary.
  StreamOutcome outcome = ReadStream(*reader);
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0], {.reason = v1::END_REASON_CANCELLED,
                                       .completed = 0,
                                       .cancelled = 1,
                                       .pending = {{0}}});
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
}

// Issue 13: with --shutdown_grace=2s and 30 batches of slow probes, every
// batch ended UNAVAILABLE with no summary, and ProbeBatch callers lost the
// results that had completed.  Now, with 30 concurrent batches of both RPCs
// (each: one fast target, two that never answer), shutdown ends every
// batch CANCELLED within the grace: StreamProbes streams the fast result and
// its summary, ProbeBatch returns it in `done` with the others pending;
// with a grace of 1 s, 2 s and 10 s, as the issue asks.
class ShutdownPromiseTest : public ::testing::TestWithParam<absl::Duration> {
 protected:
  TargetServer target_;
};

TEST_P(ShutdownPromiseTest, RunningBatchesEndCancelledWithTheirSummary) {
  const absl::Duration grace = GetParam();
  server::ServerOptions options;
  options.shutdown_grace = grace;
  TestServer server(options);
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.raw_url("/hang"),
                    target_.raw_url("/hang")});
  // Longer than every grace: the shutdown, not the probe timeout, ends them.
  request.mutable_defaults()->mutable_timeout()->set_seconds(60);
  constexpr int kEach = 15;
  std::vector<StreamOutcome> streams(kEach);
  std::vector<v1::ProbeBatchResponse> replies(kEach);
  std::vector<grpc::Status> reply_status(kEach);
  std::vector<std::thread> clients;
  for (int i = 0; i < kEach; ++i) {
    clients.emplace_back(
        [&, i] { streams[i] = ReadStream(server.stub(), request); });
    clients.emplace_back([&, i] {
      grpc::ClientContext context;
      reply_status[i] =
          server.stub().ProbeBatch(&context, request, &replies[i]);
    });
  }
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) {
        return s.raw.in_flight == 2 * 2 * kEach && s.http.requests == 2 * kEach;
      },
      kPatience));
  // Every fast result has been handed to its batch before the shutdown:
  // the engine frees a probe's slot only once its result is delivered.
  ASSERT_TRUE(WaitUntil([&] {
    const EngineStats stats = server.server().engine().Stats();
    return stats.probes_in_flight == 2 * 2 * kEach && stats.probes_queued == 0;
  }));

  const absl::Time start = absl::Now();
  server.server().Shutdown();
  const absl::Duration took = absl::Now() - start;
  for (std::thread& client : clients) client.join();
  std::fprintf(stderr, "grace %s: shutdown took %s\n",
               absl::FormatDuration(grace).c_str(),
               absl::FormatDuration(took).c_str());
  // Within the grace (0.82 s, 1.61 s and 9.01 s measured), with a margin
  // for a loaded machine.
  EXPECT_LE(took, grace + absl::Seconds(1));

  int streams_ok = 0, replies_ok = 0;
  for (int i = 0; i < kEach; ++i) {
    const StreamOutcome& stream = streams[i];
    if (stream.status.ok() && stream.summaries.size() == 1 &&
        stream.results.size() == 1) {
      ++streams_ok;
      EXPECT_EQ(stream.results[0].index(), 0u);
      ExpectSummary(stream.summaries[0], {.reason = v1::END_REASON_CANCELLED,
                                          .total = 3,
                                          .completed = 1,
                                          .cancelled = 2,
                                          .pending = {{1, 2}}});
    } else {
      ADD_FAILURE() << "stream " << i << ": " << stream.status.error_code()
                    << " " << stream.status.error_message() << ", "
                    << stream.results.size() << " results, "
                    << stream.summaries.size() << " summaries";
    }
    if (reply_status[i].ok()) {
      ++replies_ok;
      EXPECT_THAT(Indices(replies[i].done()), ElementsAre(0u));
      EXPECT_THAT(replies[i].pending_indices(), ElementsAre(1u, 2u));
      ExpectSummary(
          replies[i].summary(),
          {.reason = v1::END_REASON_CANCELLED, .completed = 1, .cancelled = 2});
    } else {
      ADD_FAILURE() << "reply " << i << ": " << reply_status[i].error_code()
                    << " " << reply_status[i].error_message();
    }
  }
  std::fprintf(stderr, "summaries: %d of %d streams, %d of %d replies\n",
               streams_ok, kEach, replies_ok, kEach);
}

INSTANTIATE_TEST_SUITE_P(Graces, ShutdownPromiseTest,
                         ::testing::Values(absl::Seconds(1), absl::Seconds(2),
                                           absl::Seconds(10)),
                         [](const auto& info) {
                           return absl::StrCat(absl::ToInt64Seconds(info.param),
                                               "s");
                         });

// fanprobe-server as a child process on a free port.
class ServerProcess {
 public:
  explicit ServerProcess(absl::string_view grace)
      : process_({FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                  "--http_address=127.0.0.1:0", "--workers=1",
                  absl::StrCat("--shutdown_grace=", grace)}) {
    std::optional<std::string> listening = process_.WaitForStderrLine(
        [](absl::string_view line) {
          return absl::StrContains(line, R"("event":"listening")");
        },
        kPatience);
    if (listening.has_value()) {
      RE2::PartialMatch(*listening, R"re("address":"([^"]+)")re", &address_);
    }
  }

  const std::string& address() const { return address_; }
  Subprocess& process() { return process_; }
  // The JSON lines of its stderr so far (gRPC's own messages, if any, are
  // not fanprobe's log).
  std::vector<std::string> LogLines() const {
    std::vector<std::string> lines;
    for (absl::string_view line :
         absl::StrSplit(process_.Stderr(), '\n', absl::SkipEmpty())) {
      if (absl::StartsWith(line, "{")) lines.emplace_back(line);
    }
    return lines;
  }

 private:
  Subprocess process_;
  std::string address_;
};

TEST(ServerProcessTest, SigtermDrainsRunningStreamsThenExitsZero) {
  TargetServer target;
  ServerProcess server("5s");
  ASSERT_FALSE(server.address().empty()) << server.process().Stderr();
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto prober = v1::Prober::NewStub(channel);
  auto health = Health::NewStub(channel);

  grpc::ClientContext watch_context;
  auto watch = health->Watch(&watch_context, HealthCheckRequest());
  HealthCheckResponse health_status;
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), HealthCheckResponse::SERVING);

  grpc::ClientContext running;
  auto reader =
      prober->StreamProbes(&running, BatchRequest({target.url("/delay/500")}));
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.http.in_flight == 1; }, kPatience));

  server.process().Signal(SIGTERM);
  ASSERT_TRUE(watch->Read(&health_status));
  EXPECT_EQ(health_status.status(), HealthCheckResponse::NOT_SERVING);
  grpc::ClientContext refused;
  v1::ProbeBatchResponse response;
  const grpc::Status refusal = prober->ProbeBatch(
      &refused, BatchRequest({target.url("/status/200")}), &response);
  EXPECT_EQ(refusal.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refusal.error_message(), HasSubstr("shutting down"));

  // The running stream still gets its result and summary.
  v1::ProbeEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.result().outcome(), v1::OUTCOME_OK);
  ASSERT_TRUE(reader->Read(&event));
  ExpectSummary(event.summary(), {.reason = v1::END_REASON_ALL_COMPLETED});
  EXPECT_TRUE(reader->Finish().ok());

  const Subprocess::Exit exit = server.process().Wait(kPatience);
  EXPECT_EQ(exit.code, 0);
  // Every line of the log is a JSON object with a timestamp (the lines
  // are read back with their keys sorted).
  absl::StatusOr<std::vector<std::string>> log =
      ParseJsonLines(server.LogLines());
  ASSERT_TRUE(log.ok()) << log.status() << "\n" << server.process().Stderr();
  EXPECT_THAT(*log, Each(MatchesRegex(
                        R"re(.*"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:)re"
                        R"re([0-9]{2}:[0-9]{2}(\.[0-9]+)?\+00:00".*)re")));
  EXPECT_THAT(*log, Contains(AllOf(HasSubstr(R"("event":"draining")"),
                                   HasSubstr(R"("signal":"SIGTERM")"))));
  EXPECT_THAT(*log, Contains(AllOf(HasSubstr(R"("event":"batch")"),
                                   HasSubstr(R"("reason":"ALL_COMPLETED")"))));
  EXPECT_THAT(
      *log,
      Contains(MatchesRegex(R"re(\{"event":"stopped","ts":"[^"]+"\})re")));
  watch_context.TryCancel();
}

TEST(ServerProcessTest, SigintEndsStreamsStillRunningAfterTheGrace) {
  TargetServer target;
  ServerProcess server("1s");
  ASSERT_FALSE(server.address().empty()) << server.process().Stderr();
  auto prober = v1::Prober::NewStub(grpc::CreateChannel(
      server.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto reader =
      prober->StreamProbes(&context, BatchRequest({target.raw_url("/hang")}));
  grpc::ClientContext batch_context;
  v1::ProbeBatchResponse reply;
  grpc::Status reply_status;
  std::thread batch_client([&] {
    reply_status = prober->ProbeBatch(
        &batch_context,
        BatchRequest({target.url("/status/200"), target.raw_url("/hang")}),
        &reply);
  });
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) {
        return s.raw.in_flight == 2 && s.http.requests == 1;
      },
      kPatience));

  const absl::Time start = absl::Now();
  server.process().Signal(SIGINT);
  StreamOutcome outcome = ReadStream(*reader);
  batch_client.join();
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0],
                {.reason = v1::END_REASON_CANCELLED, .pending = {{0}}});
  ASSERT_TRUE(reply_status.ok()) << reply_status.error_message();
  EXPECT_THAT(Indices(reply.done()), ElementsAre(0u));
  EXPECT_THAT(reply.pending_indices(), ElementsAre(1u));
  ExpectSummary(reply.summary(), {.reason = v1::END_REASON_CANCELLED});
  EXPECT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 2; }, kPatience));
  EXPECT_EQ(server.process().Wait(kPatience).code, 0);
  // The 1 s grace and the process's exit, with a margin for a loaded
  // machine.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace fanprobe
