// precompiled.cc: the one file of fanprobe_test_pch, the target that builds
// the test executables' shared precompiled header (tests/CMakeLists.txt).
// It has no code of its own.
