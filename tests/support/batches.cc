#include "tests/support/batches.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "gtest/gtest.h"
#include "proto/duration.h"

namespace fanprobe::testing {

v1::ProbeBatchRequest BatchRequest(const std::vector<std::string>& urls) {
  v1::ProbeBatchRequest request;
  for (const std::string& url : urls) request.add_targets()->set_url(url);
  return request;
}

std::vector<uint32_t> Indices(
    const google::protobuf::RepeatedPtrField<v1::ProbeResult>& results) {
  std::vector<uint32_t> indices;
  for (const v1::ProbeResult& result : results) {
    indices.push_back(result.index());
  }
  return indices;
}

grpc::ChannelArguments SlowReaderArguments() {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  arguments.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  return arguments;
}

std::optional<v1::FieldViolation> FieldViolationOf(const grpc::Status& status) {
  using google::protobuf::internal::WireFormatLite;
  const std::string& bytes = status.error_details();
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  uint64_t code = 0;
  std::string message;
  std::vector<google::protobuf::Any> details;
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    uint32_t length = 0;
    std::string value;
    if (field == 1 && type == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&code)) break;
    } else if ((field == 2 || field == 3) &&
               type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
               in.ReadVarint32(&length) && in.ReadString(&value, length)) {
      if (field == 2) {
        message = std::move(value);
      } else if (!details.emplace_back().ParseFromString(value)) {
        ADD_FAILURE() << "a detail that is no Any";
        return std::nullopt;
      }
    } else {
      ADD_FAILURE() << "not a google.rpc.Status: field " << field;
      return std::nullopt;
    }
  }
  EXPECT_EQ(code, static_cast<uint64_t>(status.error_code()));
  EXPECT_EQ(message, status.error_message());
  v1::FieldViolation violation;
  if (details.size() != 1 || !details[0].UnpackTo(&violation)) {
    ADD_FAILURE() << details.size() << " details, not one FieldViolation";
    return std::nullopt;
  }
  return violation;
}

namespace {

// Either kind of stream of ProbeEvents.
template <typename Reader>
StreamOutcome ReadEvents(Reader& reader) {
  StreamOutcome outcome;
  v1::ProbeEvent event;
  while (reader.Read(&event)) {
    if (event.has_result()) {
      // Nothing may follow the summary.
      EXPECT_THAT(outcome.summaries, ::testing::IsEmpty());
      outcome.results.push_back(std::move(*event.mutable_result()));
    } else if (event.has_results()) {
      EXPECT_THAT(outcome.summaries, ::testing::IsEmpty());
      EXPECT_GT(event.results().results_size(), 0);
      outcome.group_sizes.push_back(event.results().results_size());
      for (v1::ProbeResult& result :
           *event.mutable_results()->mutable_results()) {
        outcome.results.push_back(std::move(result));
      }
    } else {
      outcome.summaries.push_back(event.summary());
    }
  }
  outcome.status = reader.Finish();
  return outcome;
}

}  // namespace

StreamOutcome ReadStream(grpc::ClientReader<v1::ProbeEvent>& reader) {
  return ReadEvents(reader);
}

StreamOutcome ReadStream(
    grpc::ClientReaderWriter<v1::ProbeStreamRequest, v1::ProbeEvent>& stream) {
  return ReadEvents(stream);
}

StreamOutcome ReadStream(v1::Prober::Stub& stub,
                         const v1::ProbeBatchRequest& request) {
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  auto reader = stub.StreamProbes(&context, request);
  StreamOutcome outcome = ReadStream(*reader);
  outcome.elapsed = absl::Now() - start;
  return outcome;
}

void ExpectSummary(const v1::BatchSummary& summary,
                   const ExpectedSummary& expected, const char* file,
                   int line) {
  const ::testing::ScopedTrace trace(file, line, "ExpectSummary");
  EXPECT_EQ(summary.reason(), expected.reason);
  const auto expect = [](const std::optional<uint32_t>& want, uint32_t got,
                         const char* field) {
    if (want.has_value()) {
      EXPECT_EQ(got, *want) << field;
    }
  };
  expect(expected.total, summary.total(), "total");
  expect(expected.completed, summary.completed(), "completed");
  expect(expected.succeeded, summary.succeeded(), "succeeded");
  expect(expected.failed, summary.failed(), "failed");
  expect(expected.cancelled, summary.cancelled(), "cancelled");
  if (expected.pending) {
    EXPECT_THAT(summary.pending_indices(),
                ::testing::ElementsAreArray(*expected.pending));
  }
  if (expected.min_elapsed) {
    EXPECT_GE(DurationFromProto(summary.elapsed()).value(),
              *expected.min_elapsed);
  }
}

}  // namespace fanprobe::testing
