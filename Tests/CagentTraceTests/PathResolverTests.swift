@testable import CagentTrace
import Testing

@Suite("Path resolution")
struct PathResolverTests {
    func n(_ path: String) -> String { String(decoding: PathResolver.normalise(Array(path.utf8)), as: UTF8.self) }

    @Test("lexical normalisation", arguments: [
        ("/a/b", "/a/b"), ("/a//b/", "/a/b"), ("/a/./b", "/a/b"), ("/a/b/../c", "/a/c"), ("/..", "/"),
        ("/a/.hidden", "/a/.hidden"), ("/a/...", "/a/..."), ("/a/..b", "/a/..b"), ("/", "/"), ("/a/.", "/a"),
        ("/a/b/..", "/a"),
    ])
    func normalise(_ input: String, _ expected: String) {
        #expect(n(input) == expected)
        #expect(PathResolver.isNormal(Array(input.utf8)) == (input == expected))
    }

    @Test("relative paths against a followed working directory")
    func relative() {
        let resolver = PathResolver(procRoot: "/nonexistent-proc")
        resolver.setWorkingDirectory(pid: 10, "/work")
        resolver.forked(child: 11, parent: 10)
        resolver.changedDirectory(pid: 11, to: Array("sub/../src".utf8))
        #expect(resolver.resolve(pid: 10, dirfd: PathResolver.atFdcwd, path: Array("a.txt".utf8)) == Array("/work/a.txt".utf8))
        #expect(resolver.resolve(pid: 11, dirfd: PathResolver.atFdcwd, path: Array("./b".utf8)) == Array("/work/src/b".utf8))
        #expect(resolver.resolve(pid: 12, dirfd: PathResolver.atFdcwd, path: Array("c".utf8)) == nil, "unknown process: stays relative")
        #expect(resolver.resolveOrKeep(pid: 12, dirfd: 5, path: Array("c".utf8)).lossyString == "c")
    }
}
