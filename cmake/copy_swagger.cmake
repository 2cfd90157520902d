# Copies the few Swagger UI files /docs needs; warns (not fails) when npm assets are absent.
foreach(f swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js favicon-32x32.png)
  if(EXISTS ${SRC}/${f})
    file(COPY ${SRC}/${f} DESTINATION ${DST})
  else()
    message(WARNING "Swagger UI asset ${SRC}/${f} missing: run scripts/install-deps.sh")
  endif()
endforeach()
