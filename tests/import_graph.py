"""The import graph of the project's packages, read from the sources (``ast``), nothing imported.

    python tests/import_graph.py        # prints the edges between packages, and their cycles

Every ``import`` and ``from ... import`` counts, at a module's top or inside a function.
"""
import ast
import collections
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ('facekit', 'rcnn', 'mtcnn', 'retinaface')


def module_files():
    """{dotted module name: path} of the packages' sources and of retinaface.py."""
    files = {'retinaface': REPO / 'retinaface.py'}
    for package in PACKAGES[:-1]:
        for path in sorted((REPO / package).rglob('*.py')):
            parts = path.relative_to(REPO).with_suffix('').parts
            files['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return files


def imports(path):
    """The dotted names a source file imports (``from a.b import c`` counts as a.b.c and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update('%s.%s' % (node.module, alias.name) for alias in node.names)
    return names


def package_edges():
    """{(importing package, imported package): [module, ...]} between the top-level packages."""
    edges = collections.defaultdict(list)
    for module, path in module_files().items():
        source = module.split('.')[0]
        for name in imports(path):
            target = name.split('.')[0]
            if target in PACKAGES and target != source:
                edges[(source, target)].append(module)
    return {edge: sorted(set(modules)) for edge, modules in edges.items()}


def cycles(edges):
    """Every cycle of the package graph, as a list of packages."""
    graph = collections.defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    found = []

    def walk(path):
        for target in sorted(graph[path[-1]]):
            if target == path[0]:
                found.append(path + [target])
            elif target not in path and target > path[0]:
                walk(path + [target])

    for start in sorted(graph):
        walk([start])
    return found


def main():
    edges = package_edges()
    for (source, target), modules in sorted(edges.items()):
        print('%-10s -> %-10s (%d modules, e.g. %s)' % (source, target, len(modules), modules[0]))
    found = cycles(edges)
    print('cycles: %s' % ('; '.join(' -> '.join(c) for c in found) if found else 'none'))
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
