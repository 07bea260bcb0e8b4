// reflection.h: gRPC server reflection, version 1 (grpc.reflection.v1),
// which gRPC 1.51's plugin does not serve (it speaks only v1alpha).  A
// client that speaks only v1 -- grpcurl and Postman ask for v1 first --
// can list the services and read their definitions, with their comments:
// it answers from a descriptor set compiled into the server with source
// info (proto/CMakeLists.txt), not from the generated pool, which has none.
//
// Example (server.cc does this):
//   auto reflection = ReflectionService::Create(
//       {"fanprobe.v1.Prober", "grpc.health.v1.Health"}).value();
//   builder.RegisterService(reflection.get());
//
// Thread-safety: constant after Create(); calls run concurrently.

#ifndef FANPROBE_SERVER_REFLECTION_H_
#define FANPROBE_SERVER_REFLECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1/reflection.pb.h"
#include "grpcpp/grpcpp.h"

namespace fanprobe::server {

class ReflectionService final
    : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // Reads the compiled-in descriptor set; list_services answers
  // `services` (the server's own) and the two reflection services.
  // kInternal if the set does not parse or lacks one of them (a build
  // fault).
  static absl::StatusOr<std::unique_ptr<ReflectionService>> Create(
      std::vector<std::string> services);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request of the stream.
  grpc::reflection::v1::ServerReflectionResponse Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request) const;

 private:
  ReflectionService() = default;

  // Adds `file` and every file it imports, each once, to `response`.
  void AddFile(
      const google::protobuf::FileDescriptor* file,
      grpc::reflection::v1::FileDescriptorResponse* response,
      std::vector<const google::protobuf::FileDescriptor*>* sent) const;

  google::protobuf::DescriptorPool pool_;
  // Each file's FileDescriptorProto as compiled, comments included.
  absl::flat_hash_map<std::string, std::string> serialized_;
  std::vector<std::string> services_;  // what list_services answers
};

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_REFLECTION_H_
