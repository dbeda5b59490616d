/* labkit-bpf-cells: a %%bpf cell is C in JupyterLab's editor.
 *
 * JupyterLab 4 highlights every code cell in the kernel's language, so the C
 * of a `%%bpf NAME` cell is read as Python: a ' in a C comment opens a string
 * that turns the rest of the cell red, and Enter after `{` indents like
 * Python. This plugin gives each code cell whose first line is `%%bpf` the C
 * mime type (text/x-csrc: JupyterLab's own C mode, @codemirror/lang-cpp), and
 * gives it back the notebook's mime type when the first line changes. The
 * mime type is the editor's, never saved in the notebook.
 *
 * Written by hand, without a build: this file is the whole federated
 * extension (the container JupyterLab loads: init() receives the share scope,
 * get("./extension") the plugin). It imports nothing of its own; the one
 * thing it needs from JupyterLab, the INotebookTracker token, comes from the
 * share scope, where JupyterLab's own @jupyterlab/notebook is.
 */
(function () {
  "use strict";
  var NAME = "labkit-bpf-cells";
  var C_MIME = "text/x-csrc";
  var MAGIC = /^\s*%%bpf\b/;    // IPython drops empty lines before a cell magic
  var shareScope = null;

  function shared(pkg) {
    var versions = shareScope && shareScope[pkg];
    var keys = versions ? Object.keys(versions) : [];
    if (!keys.length) {
      return Promise.reject(new Error(NAME + ": JupyterLab shares no " + pkg));
    }
    // JupyterLab's own copy (the one its plugins hold tokens of) is the one already loaded
    var key = keys.filter(function (k) { return versions[k].loaded; })[0] || keys[keys.length - 1];
    return Promise.resolve(versions[key].get()).then(function (factory) { return factory(); });
  }

  function isBpf(model) {
    return MAGIC.test(model.sharedModel.getSource());
  }

  function watchNotebook(panel) {
    var notebook = panel.content;
    var seen = new WeakSet();

    function apply(model) {
      if (model.isDisposed) {
        return;
      }
      if (isBpf(model)) {
        if (model.mimeType !== C_MIME) {
          model.mimeType = C_MIME;
        }
      } else if (model.mimeType === C_MIME && notebook.codeMimetype !== C_MIME) {
        model.mimeType = notebook.codeMimetype;
      }
    }

    function watchCell(model) {
      if (!model || model.type !== "code" || seen.has(model)) {
        return;
      }
      seen.add(model);
      // the source changed (typed, pasted, the notebook loaded) ...
      model.sharedModel.changed.connect(function () { apply(model); });
      // ... or the notebook set every code cell to the kernel's language again
      model.mimeTypeChanged.connect(function () { apply(model); });
      apply(model);
    }

    function watchCells() {
      var cells = notebook.model ? notebook.model.cells : null;
      for (var i = 0; cells && i < cells.length; i++) {
        watchCell(cells.get(i));
      }
    }

    function watchModel() {
      if (notebook.model) {
        notebook.model.cells.changed.connect(watchCells);
        watchCells();
      }
    }

    notebook.modelChanged.connect(watchModel);
    watchModel();
  }

  function plugin(notebook) {
    return {
      id: NAME + ":plugin",
      description: "%%bpf cells are C in the editor (highlighting, indentation).",
      autoStart: true,
      requires: [notebook.INotebookTracker],
      activate: function (app, tracker) {
        tracker.forEach(watchNotebook);
        tracker.widgetAdded.connect(function (sender, panel) { watchNotebook(panel); });
      }
    };
  }

  var container = {
    init: function (scope) {
      shareScope = scope;
    },
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error(NAME + " has no module " + module));
      }
      return shared("@jupyterlab/notebook").then(function (notebook) {
        return function () { return { __esModule: true, default: [plugin(notebook)] }; };
      });
    }
  };
  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = container;
})();
