using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Anteroom.Simulator.Http;

/// <summary>The simulator's own routes under <c>/sim</c>: statistics, and the hold switch for demos and tests in other processes.</summary>
internal sealed class ControlApi(Simulation simulation)
{
    public void Map(IEndpointRouteBuilder routes)
    {
        routes.MapGet("/sim/stats", context => StatsAsync(context));
        routes.MapPost("/sim/hold", context =>
        {
            simulation.HoldGate.Hold();
            return StatsAsync(context);
        });
        routes.MapPost("/sim/release", context =>
        {
            simulation.HoldGate.Release();
            return StatsAsync(context);
        });
    }

    private Task StatsAsync(HttpContext http) =>
        JsonResponse.WriteAsync(http, StatusCodes.Status200OK, simulation.Stats.Snapshot(), SimulatorJson.Wire.SimulatorStats);
}
