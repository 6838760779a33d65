// Starts GraphiQL on Folio's page with the configuration the server wrote into it: the
// endpoint, the header template and the example tabs.
//
// Every request to Folio, schema introspection included, needs a bearer token. A request
// whose headers carry none (no Authorization, or the template's placeholder) goes with the
// last token typed into any tab's headers; before one is typed it is answered here with a
// message saying where the token goes, instead of a 401. Typing a token gives GraphiQL a
// new fetcher, which makes it introspect again: the docs appear without a click on
// "re-fetch schema". The token lives in this page's memory only: headers are never
// written to storage.
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('folio-graphiql-config').textContent);
  // How long typing in the headers pane pauses before the token is taken.
  var HEADERS_SETTLE_MS = 400;
  var AUTHORIZATION = /^authorization$/i;

  var send = GraphiQL.createFetcher({ url: config.endpoint, enableIncrementalDelivery: false });
  var lastToken = null;

  function parseHeaders(text) {
    try {
      var headers = text && text.trim() ? JSON.parse(text) : {};
      return headers && typeof headers === 'object' && !Array.isArray(headers) ? headers : null;
    } catch (e) {
      return null;
    }
  }

  function authorizationKey(headers) {
    return Object.keys(headers).filter(function (key) {
      return AUTHORIZATION.test(key);
    })[0];
  }

  // A value worth sending: "Bearer" and something that is not the placeholder.
  function isToken(value) {
    return typeof value === 'string' && value !== config.tokenPlaceholder &&
      /^Bearer\s+[^\s<>]+$/.test(value.trim());
  }

  function missingToken() {
    return Promise.resolve({ errors: [{ message: config.missingTokenMessage }] });
  }

  function makeFetcher() {
    return function fetcher(params, options) {
      var headers = Object.assign({}, options && options.headers);
      var key = authorizationKey(headers);
      if (key === undefined || headers[key] === config.tokenPlaceholder) {
        if (lastToken === null) {
          return missingToken();
        }
        headers[key === undefined ? 'Authorization' : key] = lastToken;
      }
      return send(params, Object.assign({}, options, { headers: headers }));
    };
  }

  function FolioGraphiQL() {
    var state = React.useState(makeFetcher);
    var setFetcher = state[1];
    var timer = React.useRef(null);
    var onEditHeaders = React.useCallback(function (text) {
      clearTimeout(timer.current);
      timer.current = setTimeout(function () {
        var headers = parseHeaders(text);
        var key = headers && authorizationKey(headers);
        var value = key === undefined ? null : headers[key];
        if (isToken(value) && value !== lastToken) {
          lastToken = value;
          setFetcher(function () {
            return makeFetcher();
          });
        }
      }, HEADERS_SETTLE_MS);
    }, []);
    return React.createElement(GraphiQL, {
      fetcher: state[0],
      defaultHeaders: config.headers,
      defaultTabs: config.tabs,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
      onEditHeaders: onEditHeaders,
    });
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(FolioGraphiQL),
  );
})();
