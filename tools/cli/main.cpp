// kite — command-line front end. Subcommands live in their own files (cmd_*.cpp).
#include <cstdio>
int main(int argc, char** argv) {
  std::puts("kite: under construction");
  return 0;
}
