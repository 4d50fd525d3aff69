// DynamoDB Local for openlookout serve: bound to 127.0.0.1 only (its own command line has no host
// option, and its Jetty server listens on every interface), and answering only requests signed with
// the key in OPENLOOKOUT_BACKEND_KEY (drawn at each start, passed in the environment, which other
// users cannot read) and sent to 127.0.0.1:<its port> (no DNS rebinding). Everyone else, including a
// CORS preflight, gets 403. Same arguments as DynamoDBLocal.jar's main.
import java.lang.reflect.Field;
import java.util.Arrays;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public class LoopbackDynamoDB {
    public static void main(String[] args) throws Exception {
        String key = System.getenv("OPENLOOKOUT_BACKEND_KEY");
        if (key == null || !key.matches("[A-Za-z0-9]{16,}")) {
            throw new IllegalStateException("OPENLOOKOUT_BACKEND_KEY must hold the key drawn by openlookout serve");
        }
        int port = Integer.parseInt(args[Arrays.asList(args).indexOf("-port") + 1]);
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost("127.0.0.1");
        }
        server.setHandler(new Guard(server.getHandler(), "Credential=" + key + "/", "127.0.0.1:" + port));
        proxy.start();
        proxy.join();
    }

    static final class Guard extends Handler.Wrapper {
        private final String credential;
        private final String host;

        Guard(Handler handler, String credential, String host) {
            super(handler);
            this.credential = credential;
            this.host = host;
        }

        @Override
        public boolean handle(Request request, Response response, Callback callback) throws Exception {
            String authorization = request.getHeaders().get("Authorization");
            boolean signed = authorization != null && authorization.contains(this.credential);
            if (!signed || !this.host.equals(request.getHeaders().get("Host"))) {
                Response.writeError(request, response, callback, 403, "Only openlookout serve may call this.");
                return true;
            }
            return super.handle(request, response, callback);
        }
    }
}
