using Anteroom.GatewayBench;

return args.Length == 0 ? Usage() : args[0] switch
{
    "upstream" => await StampedUpstream.RunAsync(new Arguments(args[1..])),
    "stream" => await StreamClient.RunAsync(new Arguments(args[1..])),
    "proxy" => await BareProxy.RunAsync(new Arguments(args[1..])),
    "ports" => FreePorts.Print(new Arguments(args[1..])),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        Usage (run by bench/gateway/run.sh):
          gateway-bench upstream --port P [--tokens 100]
          gateway-bench proxy --port P --upstream URL
          gateway-bench stream --url URL --model M [--rate 50] [--concurrency 10] [--seconds 5]
          gateway-bench ports --count N
        """);
    return 2;
}
