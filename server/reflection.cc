#include "server/reflection.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"

// proto/CMakeLists.txt compiles these in: a FileDescriptorSet.
extern const unsigned char fanprobe_reflection_descriptors[];
extern const size_t fanprobe_reflection_descriptors_size;

namespace fanprobe::server {
namespace {

namespace v1 = ::grpc::reflection::v1;

// One ServerReflectionInfo stream: a request, its answer, the next.
class ReflectionReactor final
    : public grpc::ServerBidiReactor<v1::ServerReflectionRequest,
                                     v1::ServerReflectionResponse> {
 public:
  explicit ReflectionReactor(const ReflectionService& service)
      : service_(service) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client is done (or gone)
      Finish(grpc::Status::OK);
      return;
    }
    response_ = service_.Answer(request_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  const ReflectionService& service_;
  v1::ServerReflectionRequest request_;
  v1::ServerReflectionResponse response_;
};

void SetError(grpc::StatusCode code, std::string message,
              v1::ServerReflectionResponse* response) {
  v1::ErrorResponse* error = response->mutable_error_response();
  error->set_error_code(code);
  error->set_error_message(std::move(message));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReflectionService>> ReflectionService::Create(
    std::vector<std::string> services) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(
          fanprobe_reflection_descriptors,
          static_cast<int>(fanprobe_reflection_descriptors_size))) {
    return absl::InternalError("reflection: the descriptor set does not parse");
  }
  std::unique_ptr<ReflectionService> service(new ReflectionService());
  // protoc writes imports before the files that import them.
  for (const google::protobuf::FileDescriptorProto& file : set.file()) {
    const google::protobuf::FileDescriptor* built =
        service->pool_.BuildFile(file);
    if (built == nullptr) {
      return absl::InternalError(
          absl::StrCat("reflection: cannot build ", file.name()));
    }
    service->serialized_[file.name()] = file.SerializeAsString();
  }
  services.push_back("grpc.reflection.v1.ServerReflection");
  services.push_back("grpc.reflection.v1alpha.ServerReflection");
  for (const std::string& name : services) {
    if (service->pool_.FindServiceByName(name) == nullptr) {
      return absl::InternalError(
          absl::StrCat("reflection: no service ", name, " in the set"));
    }
  }
  service->services_ = std::move(services);
  return service;
}

grpc::ServerBidiReactor<v1::ServerReflectionRequest,
                        v1::ServerReflectionResponse>*
ReflectionService::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new ReflectionReactor(*this);
}

v1::ServerReflectionResponse ReflectionService::Answer(
    const v1::ServerReflectionRequest& request) const {
  v1::ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  std::vector<const google::protobuf::FileDescriptor*> sent;
  switch (request.message_request_case()) {
    case v1::ServerReflectionRequest::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(
            name);
      }
      break;
    case v1::ServerReflectionRequest::kFileByFilename:
      if (const auto* file = pool_.FindFileByName(request.file_by_filename())) {
        AddFile(file, response.mutable_file_descriptor_response(), &sent);
      } else {
        SetError(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("no file ", request.file_by_filename()),
                 &response);
      }
      break;
    case v1::ServerReflectionRequest::kFileContainingSymbol:
      if (const auto* file = pool_.FindFileContainingSymbol(
              request.file_containing_symbol())) {
        AddFile(file, response.mutable_file_descriptor_response(), &sent);
      } else {
        SetError(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("no symbol ", request.file_containing_symbol()),
                 &response);
      }
      break;
    case v1::ServerReflectionRequest::kFileContainingExtension: {
      const v1::ExtensionRequest& wanted = request.file_containing_extension();
      const google::protobuf::Descriptor* type =
          pool_.FindMessageTypeByName(wanted.containing_type());
      const google::protobuf::FieldDescriptor* extension =
          type == nullptr
              ? nullptr
              : pool_.FindExtensionByNumber(type, wanted.extension_number());
      if (extension != nullptr) {
        AddFile(extension->file(), response.mutable_file_descriptor_response(),
                &sent);
      } else {
        SetError(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("no extension ", wanted.extension_number(),
                              " of ", wanted.containing_type()),
                 &response);
      }
      break;
    }
    case v1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const std::string& name = request.all_extension_numbers_of_type();
      const google::protobuf::Descriptor* type =
          pool_.FindMessageTypeByName(name);
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND, absl::StrCat("no type ", name),
                 &response);
        break;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool_.FindAllExtensions(type, &extensions);
      v1::ExtensionNumberResponse* numbers =
          response.mutable_all_extension_numbers_response();
      numbers->set_base_type_name(name);
      for (const auto* extension : extensions) {
        numbers->add_extension_number(extension->number());
      }
      break;
    }
    case v1::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(grpc::StatusCode::INVALID_ARGUMENT,
               "the request asks for nothing", &response);
      break;
  }
  return response;
}

void ReflectionService::AddFile(
    const google::protobuf::FileDescriptor* file,
    v1::FileDescriptorResponse* response,
    std::vector<const google::protobuf::FileDescriptor*>* sent) const {
  if (std::find(sent->begin(), sent->end(), file) != sent->end()) return;
  sent->push_back(file);
  response->add_file_descriptor_proto(serialized_.at(file->name()));
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFile(file->dependency(i), response, sent);
  }
}

}  // namespace fanprobe::server
